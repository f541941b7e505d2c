#!/usr/bin/env bash
# One command: install, then run the whole test suite against real local engines.
# HOTLINE_TEST_ENGINES=containers runs the suite against testcontainers (needs Docker).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/install-browser.sh  # Debian's Chromium and fonts, for the pages' browser tests
.venv/bin/ruff check shared services cli deploy tests
scripts/typecheck.sh
exec .venv/bin/pytest -q "$@"
