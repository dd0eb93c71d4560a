#!/usr/bin/env bash
# run.sh: installs what is missing, builds, and runs helplined on its
# embedded default store (SQLite in ./var/). Extra arguments go to helplined.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/ops/deps.sh" run
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHL_TESTS=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" >/dev/null
mkdir -p "$root/var"
cat <<MSG

  Helpline is starting: open http://127.0.0.1:8080/ in a browser.
  Health check: curl http://127.0.0.1:8080/healthz
  State (SQLite database) is kept in $root/var/. Stop with Ctrl-C.

MSG
exec "$root/build/helplined" --state-dir "$root/var" --web-root "$root/client-web" "$@"
