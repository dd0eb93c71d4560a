#!/usr/bin/env bash
# valgrind.sh [test-name ...]: runs the integration suite (or the named
# tests, e.g. "http chat") with every helplined and helplinectl the tests
# start running under valgrind memcheck (no sanitizers: a separate build in
# build-vg), and reports each process's errors and definite or indirect
# leaks. Exit status 0 only when no valgrind log holds an error. Tests that
# fail only because the daemon is ~20x slower under valgrind are reported
# but do not fail the run; their valgrind logs still count.
# Long (about an hour on 2 cores); not part of ops/test.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || {
  echo "valgrind.sh: installing valgrind"; apt-get install -y -qq valgrind >/dev/null; }
bash "$root/ops/deps.sh" test

build="$root/build-vg"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DHL_SANITIZE=OFF -DHL_TEST_HOOKS=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target helplined helplinectl hl-seccomp-exec >/dev/null

work=$(mktemp -d /tmp/helpline-vg.XXXXXX)
mkdir -p "$work/bin" "$work/logs" "$work/out"
for b in helplined helplinectl; do
  cat >"$work/bin/$b" <<EOF
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full \\
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \\
  --num-callers=30 --log-file=$work/logs/$b.%p.log $build/$b "\$@"
EOF
  chmod +x "$work/bin/$b"
done
[ -x "$build/hl-seccomp-exec" ] && ln -s "$build/hl-seccomp-exec" "$work/bin/hl-seccomp-exec"

if [ $# -gt 0 ]; then
  tests=(); for t in "$@"; do tests+=("$root/tests/integration/$t.test.mjs"); done
else
  tests=("$root"/tests/integration/*.test.mjs)
fi

passed=0 slow=()
for t in "${tests[@]}"; do
  name=$(basename "$t" .test.mjs)
  start=$(date +%s)
  if (cd "$root/tests" && HELPLINED="$work/bin/helplined" HL_WEB_ROOT="$root/client-web" \
        HL_TEST_SLOW=20 timeout 1200 node --test "$t" >"$work/out/$name.log" 2>&1); then
    passed=$((passed + 1)); echo "valgrind: $name ok ($(( $(date +%s) - start )) s)"
  else
    slow+=("$name"); echo "valgrind: $name: a test failed under valgrind (see $work/out/$name.log)"
  fi
done

procs=$(find "$work/logs" -name '*.log' | wc -l)
bad=()
for l in "$work"/logs/*.log; do
  [ -s "$l" ] && bad+=("$l")
done
echo "valgrind: ${#tests[@]} test files, $passed passed, ${#slow[@]} failed under valgrind: ${slow[*]:-none}"
echo "valgrind: $procs processes checked, ${#bad[@]} with errors"
for l in "${bad[@]}"; do echo "== $l"; head -60 "$l"; done
echo "valgrind: logs in $work"
[ ${#bad[@]} -eq 0 ]
