#!/bin/bash
# vendor-qrcode.sh: fetches qrcode-generator 2.0.4 (Kazuhiko Arase, MIT
# licence, stated in the file's header) from the npm registry, checks it
# against the integrity hash pinned here, and copies its ES module into
# client-web/vendor/qrcode/. The result is committed; the staff console
# draws the enrolment QR code (the otpauth:// URI) with it, in the page, so
# the TOTP secret never leaves the browser for a third-party service.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/client-web/vendor/qrcode
want='sha512-mZSiP6RnbHl4xL2Ap5HfkjLnmxfKcPWpWe/c+5XxCuetEenqmNFf1FH/ftXPCtFG5/TDobjsjz6sSNL0Sr8Z9g=='
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent qrcode-generator@2.0.4 >/dev/null
got="sha512-$(openssl dgst -sha512 -binary qrcode-generator-2.0.4.tgz | base64 -w0)"
[ "$got" = "$want" ] || { echo "integrity mismatch for qrcode-generator: $got" >&2; exit 1; }
tar xzf qrcode-generator-2.0.4.tgz
mkdir -p "$out"
cp package/dist/qrcode.mjs "$out/qrcode.mjs"
echo "vendored qrcode-generator 2.0.4 into $out"
