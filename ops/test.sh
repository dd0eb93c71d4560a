#!/usr/bin/env bash
# test.sh: installs what is missing, builds under AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs the whole test suite with ctest:
# C unit tests, integration tests against the real daemon, and a bounded
# libFuzzer run of every fuzz target (FUZZ_SECONDS each, default 20).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/ops/deps.sh" test

build="$root/build-test"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DHL_SANITIZE=ON -DHL_TEST_HOOKS=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
log=$(mktemp)
(cd "$build" && ctest --output-on-failure -j2 --timeout 600) 2>&1 | tee "$log"
ctest_status=${PIPESTATUS[0]}
ct_total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
ct_failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
rm -f "$log"
[ "$ctest_status" -eq 0 ] || { echo "ctest failed"; exit 1; }

# Fuzz targets need clang's libFuzzer: a separate build of the core.
fuzz="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$fuzz" -DCMAKE_BUILD_TYPE=Debug -DHL_FUZZ=ON >/dev/null
cmake --build "$fuzz" -j"$(nproc)"
secs=${FUZZ_SECONDS:-20}
pass=0 fail=0
for f in "$fuzz"/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus=$(mktemp -d)
  cp -r "$root/tests/fuzz/corpus/${name#fuzz_}/." "$corpus/" 2>/dev/null || true
  if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 "$corpus" \
       >"$corpus.log" 2>&1; then
    echo "fuzz $name: ok ($(grep -o 'Done [0-9]* runs' "$corpus.log" || echo done))"
    pass=$((pass + 1))
  else
    echo "fuzz $name: FAILED"; tail -40 "$corpus.log"
    fail=$((fail + 1))
  fi
  rm -rf "$corpus" "$corpus.log"
done
echo "fuzz: $pass passed, $fail failed"
ct_total=${ct_total:-0} ct_failed=${ct_failed:-0}
echo "total: $((ct_total - ct_failed + pass)) passed, $((ct_failed + fail)) failed"
[ "$fail" -eq 0 ]
