#!/usr/bin/env bash
# mypy --strict over everything the project ships (the packages), then over its tests.
# The folders are mapped onto `hotline.*` by pyproject (services/audit-log has a dash), which
# mypy cannot follow, so it reads them through a tree of symbolic links named as imported.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/hotline"
for pair in shared:shared cli:cli deploy:deploy intake:services/intake triage:services/triage \
  notify:services/notify audit_log:services/audit-log; do
  ln -s "$PWD/${pair#*:}" "$tree/hotline/${pair%%:*}"
done
export MYPYPATH="$tree"
.venv/bin/mypy --strict --explicit-package-bases -p hotline.shared -p hotline.cli \
  -p hotline.deploy -p hotline.intake -p hotline.triage -p hotline.notify -p hotline.audit_log
.venv/bin/mypy --strict --explicit-package-bases tests
