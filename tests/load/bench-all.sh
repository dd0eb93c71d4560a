#!/bin/sh
# bench-all.sh: the full benchmark of docs/performance.md, every scenario
# against helplined and the Node peer (tests/load/peer.mjs), one after the
# other; about 20 minutes (most of it making 50 counsellor accounts per run:
# Argon2id for each enrolment and login). Use a Release build, e.g.
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DHL_TESTS=OFF
#   cmake --build build-bench -j2
#   sh tests/load/bench-all.sh build-bench
# Each run stops by itself; only 127.0.0.1 is used. Extra arguments after
# the build directory go to every helpline-bench run (e.g. --json,
# --duration 5). Chats do the end-to-end handshake and send envelopes, as
# in service. The noisiest figures (the relay, the 20k fixed rate and the
# login flood) run three rounds, helplined and the peer taking turns to go
# first, the medians printed last; the relay then runs once more with
# --opaque (the relay alone, as recorded before 2026-12-07). Last,
# hl-store-bench measures the store alone (no network, no peer):
# hl_event_append with opaque payloads, with envelopes (as in service),
# with envelopes naming the event 8 appends back as seen, then the bare
# event INSERT.
set -eu
B=${1:-build}
[ $# -gt 0 ] && shift
run() { echo; "$B/helpline-bench" "$@"; }
run --scenario idle --conns 19000 --duration 10 "$@"
run --scenario relay --pairs 100 --window 8 --duration 10 --rounds 3 "$@"
run --scenario relay --pairs 100 --window 8 --duration 10 --opaque "$@"
run --scenario fixed-rate --pairs 100 --rate 20000 --duration 10 --rounds 3 "$@"
run --scenario fixed-rate --pairs 100 --rate 5000 --duration 10 "$@"
run --scenario logins --pairs 100 --rate 2000 --flood 16 --duration 20 --rounds 3 "$@"
run --scenario waiting --waiting 10000 --leave-rate 20 --duration 10 "$@"
run --scenario churn --pairs 100 --duration 10 "$@"
echo; "$B/hl-store-bench" --json
echo; "$B/hl-store-bench" --envelopes --json
echo; "$B/hl-store-bench" --envelopes --seen 8 --json
echo; "$B/hl-store-bench" --raw --json
