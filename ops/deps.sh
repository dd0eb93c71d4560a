#!/usr/bin/env bash
# deps.sh [run|test]: installs the Debian 12 packages Helpline needs, only
# those missing, and the test suite's npm packages (npm ci) for "test".
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-uv
      libuv1-dev libsodium-dev libsqlite3-dev sqlite3 libjansson-dev libinih-dev libssl-dev
      libcurl4-openssl-dev
      curl ca-certificates tzdata)
if [ "$mode" = test ]; then
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev chromium fonts-dejavu-core
        nginx-light openssl python3 systemd strace)
fi
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ]; then
  (cd "$root/tests" && npm ci --no-audit --no-fund --loglevel=error)
fi
