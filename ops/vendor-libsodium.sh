#!/bin/bash
# vendor-libsodium.sh: fetches libsodium-wrappers-sumo and libsodium-sumo
# 0.8.4 from the npm registry, checks them against the integrity hashes
# pinned here, and copies their ES modules into client-web/vendor/libsodium/
# with one change: the wrappers' bare import of "libsodium-sumo" becomes a
# relative one, so browsers load it without an import map. The result is
# committed; the daemon serves it (no third-party requests at run time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/client-web/vendor/libsodium
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
declare -A want=(
  [libsodium-wrappers-sumo]='sha512-ql7hcgulKZ3ekfa2DGAogcCKsWU0diA/0nArz1CFzh93WQdb46/Kj18ka/Hifq6uA3Ush34Pc6vU/6HXeRwUkg=='
  [libsodium-sumo]='sha512-TMtHShQfVVsaxDygyapvUC3o7YsPgXa/hRWeIgzyFz6w5k/1hirGptCxp1U7XwW3rCskaTTYKgV10v86UiGgNw=='

)
for p in libsodium-wrappers-sumo libsodium-sumo; do
  npm pack --silent "$p@0.8.4" >/dev/null
  got="sha512-$(openssl dgst -sha512 -binary "$p-0.8.4.tgz" | base64 -w0)"
  [ "$got" = "${want[$p]}" ] || { echo "integrity mismatch for $p: $got" >&2; exit 1; }
  mkdir -p "$p" && tar xzf "$p-0.8.4.tgz" -C "$p"
done
mkdir -p "$out"
sed 's/from"libsodium-sumo"/from"\.\/libsodium-sumo.mjs"/' \
  libsodium-wrappers-sumo/package/dist/modules-sumo-esm/libsodium-wrappers.mjs > "$out/libsodium-wrappers.mjs"
grep -q 'from"./libsodium-sumo.mjs"' "$out/libsodium-wrappers.mjs"
cp libsodium-sumo/package/dist/modules-sumo-esm/libsodium-sumo.mjs "$out/"
cp libsodium-wrappers-sumo/package/LICENSE "$out/LICENSE"
echo "vendored libsodium-wrappers-sumo 0.8.4 into $out"
