#!/usr/bin/env bash
# check_layering.sh CC BUILD_DIR SOURCE_ROOT JANSSON_INCLUDES...
#
# The engine and the trainer are libraries that link no server stack
# (engine/README.md). Two checks, each naming what it found:
#  1. every public header of engine/ and trainer/, preprocessed alone with
#     only the include paths those libraries give (ftbase, engine, trainer,
#     fteval's text metrics, which ft-train eval uses; Jansson), compiles, and the headers it reaches (gcc -H) include none of
#     libpq-fe.h, hiredis.h, microhttpd.h, curl.h;
#  2. the link lines of ft-train and of the engine's own unit tests name
#     none of libpq, hiredis, libcurl, libmicrohttpd, and ft-train's ELF
#     needs none of them.
set -u
cc=$1 build=$2 root=$3
shift 3
inc=(-I"$root/common/base/include" -I"$root/engine/include" -I"$root/trainer/include"
     -I"$root/eval/include")
for j in "$@"; do [ -n "$j" ] && inc+=(-I"$j"); done
forbidden='(libpq-fe|hiredis|microhttpd|curl/curl|curl)\.h'
fail=0
n=0
for h in "$root"/engine/include/ft/*.h "$root"/trainer/include/ft/*.h; do
  case $h in *cuda*) continue ;; esac # CUDA headers need the toolkit; checked by their build
  n=$((n + 1))
  out=$(printf '#include "%s"\n' "$h" | "$cc" -std=c17 -x c -E -H "${inc[@]}" - 2>&1 >/dev/null)
  if [ $? -ne 0 ]; then
    echo "FAIL: $h does not preprocess with the engine's include paths alone:"
    echo "$out" | grep -v '^\.' | head -5
    fail=1
    continue
  fi
  if bad=$(echo "$out" | grep -E "$forbidden"); then
    echo "FAIL: $h reaches a server header:"
    echo "$bad" | head -5
    fail=1
  fi
done
echo "headers checked: $n"
libs='(-lpq|libpq|hiredis|libcurl|-lcurl|microhttpd)'
for t in trainer/CMakeFiles/ft-train.dir tests/CMakeFiles/unit_engine_test_step.dir; do
  f="$build/$t/link.txt"
  if [ ! -f "$f" ]; then
    echo "FAIL: no link line at $f"
    fail=1
  elif grep -qE "$libs" "$f"; then
    echo "FAIL: $t links a server library: $(grep -oE "$libs[^ ]*" "$f" | sort -u | tr '\n' ' ')"
    fail=1
  else
    echo "link line clean: $t"
  fi
done
if needed=$(readelf -d "$build/trainer/ft-train" 2>/dev/null | grep NEEDED); then
  if echo "$needed" | grep -qE '(libpq|hiredis|libcurl|microhttpd)'; then
    echo "FAIL: ft-train needs a server library at run time:"
    echo "$needed"
    fail=1
  else
    echo "ft-train needs: $(echo "$needed" | grep -oE '\[[^]]+\]' | tr '\n' ' ')"
  fi
fi
exit $fail
