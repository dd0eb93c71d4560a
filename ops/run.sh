#!/usr/bin/env bash
# run.sh: installs what is missing, builds, and runs helplined on its
# embedded default store (SQLite in ./var/). On the first run it also does
# the demo bootstrap: creates the organisation's keys and an admin account,
# and prints how to log in. Extra arguments go to helplined.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/ops/deps.sh" run
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHL_TESTS=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" >/dev/null
state="$root/var"
mkdir -p "$state"
chmod 700 "$state"
ctl() { "$root/build/helplinectl" --state-dir "$state" "$@"; }

if [ ! -e "$state/helpline.db" ]; then
  echo "== First run: creating the organisation's keys and a demo admin account"
  ctl init --root-key-out "$state/root-key.json"
  echo
  ctl create-admin admin --name "Demo Admin" --supervisor
  echo
  echo "  Log in as 'admin': in the staff console, choose Enrol and enter the"
  echo "  code above, pick a password and scan the TOTP secret into an"
  echo "  authenticator app; then log in with username, password and code."
  echo "  (Until the console page lands, the same steps are the WebSocket"
  echo "  messages auth.enrol_begin / auth.enrol_finish / auth.login of"
  echo "  docs/protocol.md section 5.4.) Lost the code? Run:"
  echo "    $root/build/helplinectl --state-dir $state reset-password admin"
fi

cat <<MSG

  Helpline is starting: open http://127.0.0.1:8080/ in a browser.
  Health check: curl http://127.0.0.1:8080/healthz
  State (SQLite database, server key) is kept in $state/. Stop with Ctrl-C.

MSG
exec "$root/build/helplined" --state-dir "$state" --web-root "$root/client-web" "$@"
