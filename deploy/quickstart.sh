#!/usr/bin/env bash
# The README's first command. Today it installs what is missing, builds ftplat,
# starts a private PostgreSQL and Redis in .ftplat/ and applies the schema.
# (The issue "ftctl and the one-command quickstart" grows it into a whole
# fine-tuning run.) Running it twice is fine: running services are reused.
#
#   deploy/quickstart.sh          set up and start
#   deploy/quickstart.sh stop     stop the services
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state=${FT_STATE_DIR:-$root/.ftplat}

if [ "${1:-}" = stop ]; then
  deploy/dev/services.sh stop "$state"
  echo "stopped the services in $state"
  exit 0
fi

echo "==> packages"
deploy/install-deps.sh
echo "==> build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "==> services"
if [ -f "$state/env" ] && . "$state/env" && \
   psql "$FT_DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1 && \
   redis-cli -u "$FT_REDIS_URL" ping 2>/dev/null | grep -q PONG; then
  echo "reusing the running services in $state"
else
  deploy/dev/services.sh stop "$state" >/dev/null 2>&1 || true
  deploy/dev/services.sh start "$state" >/dev/null
  . "$state/env"
fi
echo "==> schema"
build/migrations/ft-migrate --database-url "$FT_DATABASE_URL" up
cat <<MSG

ftplat is set up.
  PostgreSQL: $FT_DATABASE_URL
  Redis:      $FT_REDIS_URL
  environment for other shells: . $state/env
  stop everything: deploy/quickstart.sh stop
MSG
