#!/usr/bin/env bash
# One command: install (first run, or when pyproject.toml changed; quiet otherwise) and
# start the whole system locally. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/hotline up
