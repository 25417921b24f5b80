#!/usr/bin/env bash
# Both throwaway servers at once.
#
#   deploy/dev/services.sh start DIR   start PostgreSQL and Redis in DIR and write
#                                      DIR/env (FT_DATABASE_URL, FT_REDIS_URL) to source
#   deploy/dev/services.sh stop DIR    stop both (each stop is safe to repeat)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
case "$cmd" in
start)
  mkdir -p "$dir"
  pg=$("$here/pg.sh" start "$dir")
  redis=$("$here/redis.sh" start "$dir") || { "$here/pg.sh" stop "$dir"; exit 1; }
  printf 'export FT_DATABASE_URL=%q\nexport FT_REDIS_URL=%q\n' "$pg" "$redis" > "$dir/env"
  cat "$dir/env"
  ;;
stop)
  "$here/redis.sh" stop "$dir" || true
  "$here/pg.sh" stop "$dir" || true
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
