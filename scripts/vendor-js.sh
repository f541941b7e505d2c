#!/usr/bin/env bash
# Rebuild the browser crypto of every page from ONE source each.
#
# 1. services/intake/static/vendor/ (the form's crypto library) from the lockfile: installs
#    services/intake/js/package-lock.json with `npm ci --ignore-scripts` in a scratch
#    directory (npm checks every package against the lockfile's integrity hash; no install
#    script runs; nothing is left in the tree), then copies the ESM sumo build of
#    libsodium-wrappers-sumo and of libsodium-sumo (its wasm is inlined as base64, so there
#    is no .wasm file to fetch) into the vendor folder as .js files, with the wrapper's bare
#    `import ... from "libsodium-sumo"` rewritten to the relative `./libsodium-sumo.js` (a
#    worker has no import map), copies the ISC licence, and writes SHA256SUMS over them.
# 2. services/notify/static/ (the buyer page) and services/triage/static/ (the operator
#    console): copies of that vendor folder and of the form's crypto modules each page needs
#    (services/intake/static/crypto/, where they are edited and tested against the Python
#    vectors); into the console's folder also the code the signed-in pages share (the
#    sign-in, the worker's client, page helpers, the common style: services/notify/static/
#    signin/, its source, which the buyer page serves as it is); and in each folder one
#    SHA256SUMS over every copy there (services/notify/static/vendor/README.md).
#    Never edit a copy: edit the source, run this.
#
#   scripts/vendor-js.sh            both steps (needs node and npm on PATH)
#   scripts/vendor-js.sh --copies   step 2 only, after editing a module under intake/static/crypto
#                                   or notify/static/signin
#
# Idempotent: the same lockfile and sources give the same bytes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
js="$root/services/intake/js"
intake_static="$root/services/intake/static"
vendor="$intake_static/vendor"
notify_static="$root/services/notify/static"
triage_static="$root/services/triage/static"
# The buyer page verifies signed notes (tlog.js) and opens envelopes (envelope.js); these are
# the modules those two import, and nothing else of the form's.
buyer_modules=(bytes.js canonical.js envelope.js tlog.js)
# The console opens and seals envelopes (envelope.js) and nothing else: it and its imports.
console_modules=(bytes.js canonical.js envelope.js)
# What the buyer page and the console share, all of notify/static/signin/.
signin_files=(signed-in.js signin.css signin.js)
vendored=(LICENSE libsodium-sumo.js libsodium-wrappers-sumo.js)

case "${1:-}" in
"") copies_only=false ;;
--copies) copies_only=true ;;
*)
  echo "usage: scripts/vendor-js.sh [--copies]" >&2
  exit 2
  ;;
esac

if ! $copies_only; then
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

  (cd "$vendor" && sha256sum "${vendored[@]}" >SHA256SUMS)
  version=$(node -p 'require(process.argv[1]).version' "$modules/libsodium-wrappers-sumo/package.json")
  echo "vendor-js: libsodium-wrappers-sumo $version vendored into ${vendor#"$root"/}" >&2
fi

# The intake vendor folder must be whole before it is copied anywhere.
(cd "$vendor" && sha256sum --check --quiet SHA256SUMS)

copied=() # the paths copied into the folder being filled, for its SHA256SUMS

# copy FROM STATIC FOLDER NAME...: FROM/NAME to STATIC/FOLDER/NAME, for each NAME.
copy() {
  local from=$1 static=$2 folder=$3
  shift 3
  mkdir -p "$static/$folder"
  for name in "$@"; do
    cp "$from/$name" "$static/$folder/$name"
    copied+=("$folder/$name")
  done
}

# write_sums STATIC: its SHA256SUMS over what was copied into it, and start the next folder.
write_sums() {
  local static=$1
  (cd "$static" && sha256sum "${copied[@]}" >SHA256SUMS)
  echo "vendor-js: ${#copied[@]} files copied into ${static#"$root"/} (SHA256SUMS)" >&2
  copied=()
}

copy "$vendor" "$notify_static" vendor "${vendored[@]}"
copy "$intake_static/crypto" "$notify_static" crypto "${buyer_modules[@]}"
write_sums "$notify_static"

copy "$vendor" "$triage_static" vendor "${vendored[@]}"
copy "$intake_static/crypto" "$triage_static" crypto "${console_modules[@]}"
copy "$notify_static/signin" "$triage_static" signin "${signin_files[@]}"
write_sums "$triage_static"
