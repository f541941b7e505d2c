#!/usr/bin/env bash
# Rebuild services/intake/static/vendor/ (the form's crypto library) from the lockfile.
#
# Installs services/intake/js/package-lock.json with `npm ci --ignore-scripts` in a scratch
# directory (npm checks every package against the lockfile's integrity hash; no install
# script runs; nothing is left in the tree), then copies the ESM sumo build of
# libsodium-wrappers-sumo and of libsodium-sumo (its wasm is inlined as base64, so there is
# no .wasm file to fetch) into the vendor folder as .js files, with the wrapper's bare
# `import ... from "libsodium-sumo"` rewritten to the relative `./libsodium-sumo.js` (a
# worker has no import map), copies the ISC licence, and writes SHA256SUMS over all of them.
# Idempotent: the same lockfile gives the same bytes. Needs node and npm on PATH.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
js="$root/services/intake/js"
vendor="$root/services/intake/static/vendor"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$js/package.json" "$js/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

modules="$work/node_modules"
wrappers="$modules/libsodium-wrappers-sumo/dist/modules-sumo-esm/libsodium-wrappers.mjs"
sumo="$modules/libsodium-sumo/dist/modules-sumo-esm/libsodium-sumo.mjs"

# The rewrite must hit exactly one import, or the vendored wrapper would not load.
bare='from"libsodium-sumo"'
if [ "$(grep -o "$bare" "$wrappers" | wc -l)" -ne 1 ]; then
  echo "vendor-js: expected one import of libsodium-sumo in the wrapper; the build changed" >&2
  exit 1
fi

mkdir -p "$vendor"
sed "s|$bare|from\"./libsodium-sumo.js\"|" "$wrappers" >"$vendor/libsodium-wrappers-sumo.js"
cp "$sumo" "$vendor/libsodium-sumo.js"
cp "$modules/libsodium-wrappers-sumo/LICENSE" "$vendor/LICENSE"

cd "$vendor"
sha256sum LICENSE libsodium-sumo.js libsodium-wrappers-sumo.js >SHA256SUMS
version=$(node -p 'require(process.argv[1]).version' "$modules/libsodium-wrappers-sumo/package.json")
echo "vendor-js: libsodium-wrappers-sumo $version vendored into ${vendor#"$root"/}" >&2
