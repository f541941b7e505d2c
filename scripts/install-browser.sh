#!/usr/bin/env bash
# Install what the browser tests drive: Debian's Chromium and the fonts that render the form's
# languages (Chinese, Devanagari, Bengali, and the Latin/Vietnamese UI fonts). Idempotent:
# apt-get runs only when one of the packages is missing. Playwright's own browser download
# is never used (it cannot reach its servers here); the tests launch /usr/bin/chromium.
set -euo pipefail

packages=(chromium fonts-wqy-microhei fonts-lohit-deva fonts-lohit-beng-bengali fonts-noto-ui-core)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "Browser: Chromium and fonts already installed." >&2
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Browser: cannot install ${missing[*]}: this machine has no apt-get (install them with its package manager)." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)  # -n: fail with a message rather than hang on a password prompt
else
  echo "Browser: cannot install ${missing[*]}: not root and no sudo (run this script as root)." >&2
  exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/hotline-install-browser.XXXXXX")
if ! {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"
} >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "Browser: installing ${missing[*]} failed; the whole output is in $log" >&2
  exit 1
fi
rm -f "$log"
command -v chromium >/dev/null 2>&1 \
  || { echo "Browser: installed ${missing[*]}, yet there is no chromium on PATH." >&2; exit 1; }
echo "Browser: installed ${missing[*]}." >&2
