#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine:
#   1. installs missing Debian packages (deploy/install-deps.sh);
#   2. creates the Python virtualenv from tests/requirements.txt (and, without
#      their dependencies, tests/requirements-nodeps.txt);
#   3. builds with ASan + UBSan (-Werror) in build-test/;
#   4. starts a throwaway PostgreSQL, Redis and S3 store (SeaweedFS) on loopback
#      (deploy/dev/services.sh);
#   5. runs CTest (C unit tests, fuzz corpus replays, format check), a short
#      libFuzzer run of every harness (clang build in build-fuzz/), and pytest;
#   6. stops the servers, whatever happened, and exits non-zero on any failure.
#
# Environment:
#   FT_VENV        virtualenv folder (default: ~/.cache/ftplat/venv-<hash of both requirements files>)
#   FT_BUILD_DIR   build folder (default: build-test)
#   FT_KEEP_TMP=1  keep the temp folder with server logs after the run
#   PYTEST_ARGS    extra pytest arguments (e.g. "-k migrations"); the 30 slowest tests are
#                  listed before the summary
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
deploy/install-deps.sh || { echo "tests/run.sh: installing packages failed" >&2; exit 1; }

step "python virtualenv"
req_hash=$(cat tests/requirements.txt tests/requirements-nodeps.txt | sha256sum | cut -c1-12)
venv=${FT_VENV:-$HOME/.cache/ftplat/venv-$req_hash}
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.ftplat-ready" ]; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv" || exit 1
  "$venv/bin/pip" install -q --upgrade pip >/dev/null || exit 1
  "$venv/bin/pip" install -q -r tests/requirements.txt || { echo "tests/run.sh: pip install failed" >&2; exit 1; }
  "$venv/bin/pip" install -q --no-deps -r tests/requirements-nodeps.txt || { echo "tests/run.sh: pip install failed" >&2; exit 1; }
  touch "$venv/.ftplat-ready"
fi
echo "using $venv"
export FT_VENV=$venv

step "build (ASan + UBSan, -Werror)"
build=${FT_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFT_ASAN=ON -DFT_UBSAN=ON -DFT_WERROR=ON >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j"$jobs" 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true
[ "${PIPESTATUS[0]}" = 0 ] || { echo "tests/run.sh: build failed" >&2; exit 1; }
export FT_BUILD_DIR=$root/$build
[ -n "${build##/*}" ] || export FT_BUILD_DIR=$build

tmp=$(mktemp -d /tmp/ftplat-test.XXXXXX)
cleanup() {
  deploy/dev/services.sh stop "$tmp" >/dev/null 2>&1 || true
  if [ "${FT_KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "services (PostgreSQL, Redis, S3 on loopback)"
deploy/dev/services.sh start "$tmp" || { echo "tests/run.sh: could not start services" >&2; exit 1; }
# shellcheck disable=SC1091
. "$tmp/env"
export FT_TEST_TMP=$tmp

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

step "unit tests (ctest)"
ctest --test-dir "$build" --output-on-failure -j"$jobs" 2>&1 | tee "$tmp/ctest.log"
ctest_rc=${PIPESTATUS[0]}

step "fuzzing (libFuzzer with clang, ${FT_FUZZ_SECONDS:-10} s per harness)"
# The replays above run every seed under ASan; here each harness mutates its
# corpus for a while in a clang build (tests/fuzz/README.md).
fuzz_build=${FT_FUZZ_BUILD_DIR:-build-fuzz}
fuzz_rc=0
if cmake -S . -B "$fuzz_build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DFT_FUZZ=ON -DFT_ASAN=ON -DFT_UBSAN=ON -DFT_CUDA=OFF -DFT_FUZZ_SECONDS="${FT_FUZZ_SECONDS:-10}" \
     >"$tmp/fuzz-configure.log" 2>&1 &&
   cmake --build "$fuzz_build" -j"$jobs" --target $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//') \
     >"$tmp/fuzz-build.log" 2>&1; then
  ctest --test-dir "$fuzz_build" -L fuzz -R '/run$' --output-on-failure -j"$jobs" 2>&1 | tee "$tmp/fuzz.log"
  fuzz_rc=${PIPESTATUS[0]}
else
  tail -n 30 "$tmp/fuzz-configure.log" "$tmp/fuzz-build.log"
  echo "tests/run.sh: the fuzzing build failed" >&2
  fuzz_rc=1
fi

step "system tests (pytest)"
"$venv/bin/python" -m pytest -v -ra --durations=30 tests/system ${PYTEST_ARGS:-} 2>&1 | tee "$tmp/pytest.log"
pytest_rc=${PIPESTATUS[0]}
[ "$pytest_rc" = 5 ] && pytest_rc=0   # no tests collected is not a failure by itself

# One closing line over both runners.
c_pass=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2 \1/p' "$tmp/ctest.log" | tail -1)
c_total=${c_pass%% *}; c_fail=${c_pass##* }
c_total=${c_total:-0}; c_fail=${c_fail:-0}
# CTest counts a skipped test (exit 77, e.g. the GPU tests without a GPU) as
# passed in its summary and lists it under "did not run": count it as skipped.
c_skip=$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$tmp/ctest.log" || true)
c_skip=${c_skip:-0}
f_pass=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2 \1/p' "$tmp/fuzz.log" 2>/dev/null | tail -1)
f_total=${f_pass%% *}; f_fail=${f_pass##* }
f_total=${f_total:-0}; f_fail=${f_fail:-0}
[ "$fuzz_rc" = 0 ] || [ "$f_fail" != 0 ] || f_fail=1
p_line=$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$tmp/pytest.log" | tail -1)
p_pass=$(echo "$p_line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
p_fail=$(echo "$p_line" | grep -oE '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
p_skip=$(echo "$p_line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
passed=$(( c_total - c_fail - c_skip + f_total - f_fail + ${p_pass:-0} ))
failed=$(( c_fail + f_fail + ${p_fail:-0} ))
echo
echo "ctest exit $ctest_rc, fuzzing exit $fuzz_rc, pytest exit $pytest_rc"
echo "${passed} passed, ${failed} failed, $(( ${p_skip:-0} + c_skip )) skipped"
[ "$ctest_rc" = 0 ] && [ "$fuzz_rc" = 0 ] && [ "$pytest_rc" = 0 ] || exit 1
exit 0
