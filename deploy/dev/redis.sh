#!/usr/bin/env bash
# Throwaway Redis for tests and the quickstart.
#
#   deploy/dev/redis.sh start DIR   start redis-server on 127.0.0.1 on a free port with
#                                   its files in DIR/redis (appendonly yes,
#                                   maxmemory-policy noeviction), print the URL
#   deploy/dev/redis.sh stop DIR    shut it down
#   deploy/dev/redis.sh url DIR     print the URL of a running server
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis.sh: redis-server not found (apt-get install redis-server)" >&2; exit 1; }

port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

case "$cmd" in
start)
  mkdir -p "$dir/redis"
  dir=$(cd "$dir" && pwd)
  for _ in $(seq 1 30); do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    if redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/redis" \
        --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
        --save "" --daemonize yes --pidfile "$dir/redis/redis.pid" \
        --logfile "$dir/redis/redis.log" >/dev/null 2>&1; then
      for _ in $(seq 1 100); do
        redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.05
      done
      if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "$port" > "$dir/redis/port"
        echo "redis://127.0.0.1:$port/0"
        exit 0
      fi
    fi
  done
  echo "redis.sh: could not start Redis; see $dir/redis/redis.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/redis/port" ]; then
    redis-cli -h 127.0.0.1 -p "$(cat "$dir/redis/port")" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/redis/redis.pid" ]; then
    kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
  fi
  ;;
url)
  [ -f "$dir/redis/port" ] || { echo "redis.sh: no server in $dir" >&2; exit 1; }
  echo "redis://127.0.0.1:$(cat "$dir/redis/port")/0"
  ;;
*) echo "usage: $0 start|stop|url DIR" >&2; exit 2 ;;
esac
