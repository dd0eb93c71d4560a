#!/usr/bin/env bash
# run.sh: installs what is missing, builds, and runs helplined on its
# embedded default store (SQLite in ./var/). On the first run it also does
# the demo bootstrap: creates the organisation's keys, a demo admin (also a
# supervisor) and a demo counsellor, and prints how to try a chat in two
# browser windows. Extra arguments go to helplined; the address printed is
# the one given with --listen (default 127.0.0.1:8080; one set in a
# --config file is not read here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/ops/deps.sh" run
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHL_TESTS=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" >/dev/null
state="$root/var"
mkdir -p "$state"
chmod 700 "$state"
ctl() { "$root/build/helplinectl" --state-dir "$state" "$@"; }

listen=127.0.0.1:8080
prev=
for a in "$@"; do
  case $a in --listen=*) listen=${a#--listen=} ;; esac
  [ "$prev" = --listen ] && listen=$a
  prev=$a
done
base="http://${listen/#0.0.0.0:/127.0.0.1:}"
ctlcmd="$root/build/helplinectl --state-dir $state"

if [ ! -e "$state/helpline.db" ]; then
  echo "== First run: creating the organisation's keys and two demo accounts"
  ctl init --root-key-out "$state/root-key.json"
  echo
  echo "-- The demo admin (also a supervisor; admins take no chats):"
  ctl create-admin admin --name "Demo Admin" --supervisor
  echo
  echo "-- The demo counsellor:"
  ctl create-staff counsellor --role counsellor --name "Demo Counsellor" --languages en,es
  cat <<MSG

== Try it in two browser windows (the enrolment codes are the two above)

  Staff log in with a password and a six-digit code from an authenticator
  app: scan the QR code the console shows when you enrol (or type in the
  key under it).

  1. Admin, in a tab of the first window: open $base/console,
     choose "Enrol with your code", enter the admin's code, pick a password,
     scan the QR code, enter the app's code; then log in. Choose a
     passphrase for this browser's keys. The console then waits for your
     admin device to be certified with the organisation root key; run the
     command it shows, here:
       $ctlcmd certify-device --root-key $state/root-key.json DEVICE
     with DEVICE the number the console shows for your admin device (or see
       $ctlcmd list-devices
     ) and press "Check again": your admin device certifies your own chat
     device, and the console opens.
  2. Counsellor, in a second tab of the same window: open $base/console
     again and do the same with the counsellor's code. The console shows
     your chat device waiting, with a fingerprint. In the admin's tab, open
     Devices, compare the fingerprint and press Certify; back in the
     counsellor's tab press "Check again". Press "Start shift".
  3. Young person, in a second window (a private one is best): open
     $base/, press "Start a chat", then "Skip and start" (or
     choose some topics and "Start chatting"). The counsellor's tab is
     offered the chat (a sound, a flashing card, 30 s to answer):
     Accept, and the two of you can chat. In the console try "/" for
     canned responses, a safety card, tags, a note, and "?" for the
     keyboard shortcuts; End chat, then the wrap-up.

  Lost a code? Each person can get a new one:
    $ctlcmd reset-password admin     (or counsellor)
  To start over, stop helplined and delete $state/.
MSG
fi

cat <<MSG

  Helpline is starting.
  The young person's page: $base/
  The staff console:       $base/console
  Health check: curl $base/healthz
  State (SQLite database, server key, demo root key) is kept in $state/.
  Stop with Ctrl-C.

MSG
exec "$root/build/helplined" --state-dir "$state" --web-root "$root/client-web" "$@"
