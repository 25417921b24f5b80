#!/usr/bin/env bash
# bench_api.sh - GET /v1/fine_tuning/jobs/{id} through ft-api under wrk, beside
# pgbench running the same SELECT straight against PostgreSQL, on loopback.
# Prints requests/s and p50/p99 latency of both and their ratios; never fails
# on timing (exit 0 unless something could not run).
#
#   tests/bench/bench_api.sh            # builds build-bench/ (Release, no sanitizers)
#   FT_BUILD_DIR=build tests/bench/bench_api.sh
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=32 tests/bench/bench_api.sh
#
# Uses FT_DATABASE_URL / FT_REDIS_URL when set (tests/run.sh), else starts its
# own servers with deploy/dev/services.sh. Needs wrk and pgbench.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
secs=${BENCH_SECONDS:-5}
conns=${BENCH_CONNECTIONS:-16}
threads=${BENCH_THREADS:-2}

command -v wrk >/dev/null || { echo "bench_api: wrk is missing (deploy/install-deps.sh installs it)" >&2; exit 1; }
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
[ -x "$pgbench" ] || { echo "bench_api: pgbench is missing" >&2; exit 1; }

build=${FT_BUILD_DIR:-build-bench}
if [ -z "${FT_BUILD_DIR:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFT_ASAN=OFF -DFT_UBSAN=OFF -DFT_CUDA=OFF >/dev/null
  cmake --build "$build" -j2 --target ft-api ft-migrate >/dev/null
fi
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")
asan=$(sed -n 's/^FT_ASAN:BOOL=//p' "$build/CMakeCache.txt")

tmp=$(mktemp -d /tmp/ftbench.XXXXXX)
api_pid=""
own_services=0
cleanup() {
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  [ "$own_services" = 1 ] && deploy/dev/services.sh stop "$tmp" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if [ -z "${FT_DATABASE_URL:-}" ]; then
  deploy/dev/services.sh start "$tmp" >/dev/null
  own_services=1
  # shellcheck disable=SC1091
  . "$tmp/env"
fi

db="bench_$$"
psql "$FT_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
url="${FT_DATABASE_URL%/*}/$db"
trap 'psql "$FT_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; cleanup' EXIT
"$build/migrations/ft-migrate" --database-url "$url" up >/dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FT_DATABASE_URL="$url" FT_LISTEN_PORT=$port FT_STORE_DIR="$tmp/store" FT_LOG_LEVEL=warn
export FT_API_THREADS=${BENCH_API_THREADS:-4}
team=$("$build/api/ft-api" admin create-team bench)
admin=$("$build/api/ft-api" admin create-key --team "$team" --role admin | tail -1)
"$build/api/ft-api" serve >"$tmp/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/v1/openapi.json" >/dev/null && break; sleep 0.05; done

api() { curl -sf -H "Authorization: Bearer $admin" "$@"; }
jpost() { api -H "Content-Type: application/json" "$@"; }   # ft-api takes JSON only as JSON (415)
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
mkdir -p "$tmp/model"
echo '{"architectures":["LlamaForCausalLM"],"hidden_size":64,"vocab_size":256,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128}' >"$tmp/model/config.json"
jpost "http://127.0.0.1:$port/v1/models" -d "{\"name\":\"tiny\",\"path\":\"$tmp/model\"}" >/dev/null
printf '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n' >"$tmp/t.jsonl"
file=$(api "http://127.0.0.1:$port/v1/files" -F purpose=fine-tune -F "file=@$tmp/t.jsonl" | json id)
job=$(jpost "http://127.0.0.1:$port/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$file\"}" | json id)
key=$(jpost "http://127.0.0.1:$port/v1/keys" -d '{"role":"viewer","rate_limit_per_min":1000000}' | json key)

# ft-api under wrk.
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $key" \
  "http://127.0.0.1:$port/v1/fine_tuning/jobs/$job" >"$tmp/wrk.txt"
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}'; }
api_rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
api_p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk.txt" | to_ms)
api_p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk.txt" | to_ms)
api_non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.txt")

# The handler's SELECT, straight to PostgreSQL with pgbench.
cols=$(sed -n '/^#define JOB_COLS/,/^$/p' api/src/jobs.c | grep -o '"[^"]*"' | tr -d '"' | tr -d '\n')
printf 'SELECT %s FROM jobs WHERE id = '"'"'%s'"'"' AND team_id = '"'"'%s'"'"';\n' "$cols" "$job" "$team" >"$tmp/select.sql"
(cd "$tmp" && "$pgbench" -n -M prepared -c "$conns" -j "$threads" -T "$secs" -f select.sql -l "$url" >"$tmp/pgbench.txt" 2>&1)
pg_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$tmp/pgbench.txt" | head -1)
# Per-transaction log: column 3 is the latency in microseconds.
cat "$tmp"/pgbench_log.* | awk '{print $3}' | sort -n >"$tmp/lat.txt"
n=$(wc -l <"$tmp/lat.txt")
pct() { awk -v n="$n" -v p="$1" 'NR==int((n-1)*p)+1 {printf "%.3f", $1/1000; exit}' "$tmp/lat.txt"; }
pg_p50=$(pct 0.50)
pg_p99=$(pct 0.99)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}'; }
echo "bench_api: GET /v1/fine_tuning/jobs/{id} vs the same SELECT via pgbench"
echo "  build $btype (asan ${asan:-OFF}), $conns connections, $threads client threads, ${secs}s, ft-api $FT_API_THREADS threads, $(nproc) cores"
printf '  %-22s %12s %10s %10s\n' "" "requests/s" "p50 ms" "p99 ms"
printf '  %-22s %12s %10s %10s\n' "ft-api (wrk)" "$api_rps" "$api_p50" "$api_p99"
printf '  %-22s %12s %10s %10s\n' "postgresql (pgbench)" "$pg_tps" "$pg_p50" "$pg_p99"
printf '  %-22s %12s %10s %10s\n' "ratio ft-api/pg" "$(ratio "$api_rps" "$pg_tps")" "$(ratio "$api_p50" "$pg_p50")" "$(ratio "$api_p99" "$pg_p99")"
[ -n "$api_non2xx" ] && echo "  warning: $api_non2xx non-2xx responses from ft-api"
exit 0
