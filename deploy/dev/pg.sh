#!/usr/bin/env bash
# Throwaway PostgreSQL for tests and the quickstart.
#
#   deploy/dev/pg.sh start DIR   initdb into DIR/pg, start on 127.0.0.1 on a free
#                                port, create role and database "ftplat", print the URL
#   deploy/dev/pg.sh stop DIR    stop it (fast shutdown); DIR is left for inspection
#   deploy/dev/pg.sh url DIR     print the connection URL of a running server
#
# Durability is traded for speed (fsync off): the data is disposable. As root,
# the server runs as the "postgres" system user, since PostgreSQL refuses root;
# when that user cannot reach DIR (a private temp folder, say), the cluster
# lives in a /tmp folder of its own, named in DIR/pg.location and removed by stop.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }

pgbin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && pgbin=$d; done
[ -z "$pgbin" ] && pgbin=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
[ -x "$pgbin/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

# Where the cluster lives: DIR/pg, or the folder named in DIR/pg.location.
pgdir=$dir/pg
[ -f "$dir/pg.location" ] && pgdir=$(cat "$dir/pg.location")
data=$pgdir/data
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  pgdir=$dir/pg
  if [ "$(id -u)" = 0 ]; then
    if [ -f "$dir/pg.location" ]; then
      pgdir=$(cat "$dir/pg.location")
    elif ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
      pgdir=$(mktemp -d /tmp/ftplat-pg.XXXXXX)
      echo "$pgdir" > "$dir/pg.location"
    fi
    mkdir -p "$pgdir"
    chmod 755 "$pgdir"
    chown postgres: "$pgdir"
  else
    mkdir -p "$pgdir"
  fi
  data=$pgdir/data
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$pgbin/initdb" -D "$data" -U ftplat --auth=trust -E UTF8 --no-locale >"$pgdir/initdb.log" 2>&1 \
      || { cat "$pgdir/initdb.log" >&2; exit 1; }
  fi
  for _ in $(seq 1 30); do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    if as_owner "$pgbin/pg_ctl" -D "$data" -l "$pgdir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pgdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null 2>&1; then
      echo "$port" > "$pgdir/port"
      break
    fi
    port=""
  done
  [ -n "${port:-}" ] || { echo "pg.sh: could not start PostgreSQL; see $pgdir/server.log" >&2; tail -20 "$pgdir/server.log" >&2 || true; exit 1; }
  if ! "$pgbin/psql" -h 127.0.0.1 -p "$port" -U ftplat -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='ftplat'" | grep -q 1; then
    "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U ftplat ftplat
  fi
  echo "postgresql://ftplat@127.0.0.1:$port/ftplat"
  ;;
stop)
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/pg.location" ]; then   # a cluster kept outside DIR: remove it with DIR's life
    rm -rf "$(cat "$dir/pg.location")"
    rm -f "$dir/pg.location"
  fi
  ;;
url)
  [ -f "$pgdir/port" ] || { echo "pg.sh: no server in $dir" >&2; exit 1; }
  echo "postgresql://ftplat@127.0.0.1:$(cat "$pgdir/port")/ftplat"
  ;;
*) echo "usage: $0 start|stop|url DIR" >&2; exit 2 ;;
esac
