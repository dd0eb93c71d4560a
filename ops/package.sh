#!/usr/bin/env bash
# package.sh [BUILD_DIR]: builds the Debian package helpline_VERSION_ARCH.deb
# (Release, stripped, installed under /usr, the web root compiled in as
# /usr/share/helpline/client-web) with CPack, in BUILD_DIR (default
# build-pkg), and prints its path. HL_PACKAGE_BUILD_TYPE overrides the
# build type (package.test.mjs uses Debug, which compiles faster; the files
# and metadata are the same). docs/operations.md#install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-pkg}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${HL_PACKAGE_BUILD_TYPE:-Release}" -DHL_TESTS=OFF \
  -DHL_SANITIZE=OFF -DHL_TEST_HOOKS=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr \
  -DHL_DEFAULT_WEB_ROOT=/usr/share/helpline/client-web >/dev/null
cmake --build "$build" -j"${HL_PACKAGE_JOBS:-$(nproc)}" --target helplined helplinectl >/dev/null
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/helpline_*.deb
