#!/usr/bin/env bash
# Install Hotline into ./.venv from the project's own files (pyproject). Idempotent.
# Prerequisites: Python 3.11+, and Java 17+ with Maven for the local Kafka and Keycloak.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11 or newer is required (found: $("$python" --version 2>&1))" >&2; exit 1; }
for tool in java mvn; do
  command -v "$tool" >/dev/null \
    || { echo "$tool is required: install Java 17+ and Maven (Debian/Ubuntu: apt-get install openjdk-17-jre-headless maven)" >&2; exit 1; }
done

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "Installed: .venv/bin/hotline" >&2
