#!/usr/bin/env bash
# Install the Debian packages ftplat needs to build, test and run, when they are
# missing. Used by tests/run.sh and deploy/quickstart.sh. Idempotent and quiet
# when everything is there. Needs root or sudo only when something is missing.
set -euo pipefail

pkgs=(build-essential cmake pkg-config git ca-certificates curl
      libpq-dev libhiredis-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libssl-dev
      postgresql postgresql-client redis-server redis-tools
      python3 python3-venv python3-dev clang-format clang libclang-rt-dev wrk
      systemd iproute2
      chromium fonts-wqy-microhei)   # the console's browser test (headless Chromium, CJK glyphs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The distribution's own Redis and PostgreSQL services are not used: the project
# starts private servers on loopback (deploy/dev/). Nothing else is changed.
