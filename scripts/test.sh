#!/usr/bin/env bash
# One command: install, then run the whole test suite against real local engines.
# HOTLINE_TEST_ENGINES=containers runs the suite against testcontainers (needs Docker).
#
# With no argument the suite runs as two pytest sessions at once, each with engines, services,
# data directory and free ports of its own (tests/conftest.py), each ending with its own
# privacy sweep over its own data: most tests wait on the engines, so two sessions keep both
# cores busy (about 23 minutes one after the other; docs/decisions.md "Two test sessions").
# Their output is prefixed [1] and [2], the type check beside them [types]; the script fails if
# any fails. With arguments it type-checks, then is one session, as `pytest ARGS`:
# `scripts/test.sh tests/unit`, `scripts/test.sh -k slice`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/install-browser.sh  # Debian's Chromium and fonts, for the pages' browser tests
.venv/bin/ruff check shared services cli deploy tests
# Bytecode for the project's own modules, written once here: where PYTHONDONTWRITEBYTECODE is
# set (as on the machines this suite was tuned on), every service, CLI call and worker would
# compile them again as it starts, a tenth of a second of CPU each, hundreds of times a run.
.venv/bin/python -m compileall -q -j 0 shared services cli tests >/dev/null
if [[ $# -gt 0 ]]; then
  scripts/typecheck.sh
  exec .venv/bin/pytest -q "$@"
fi

shopt -s nullglob
# The split: integration tests a-k in the second session (the fuzzing, benchmarks and burst
# are there), everything else in the first. Both run the privacy sweep last.
second=(tests/integration/test_[a-k]*.py)
first=(tests/unit tests/e2e)
for file in tests/integration/test_*.py; do
  [[ " ${second[*]} " == *" $file "* ]] || first+=("$file")
done
sweep=tests/e2e/test_privacy_sweep.py

session() {  # session NAME ARGS...: pytest ARGS, each line of its output prefixed [NAME]
  local name=$1
  shift
  .venv/bin/pytest -q "$@" 2>&1 | sed -u "s/^/[$name] /"
  return "${PIPESTATUS[0]}"
}
# The type check runs beside them (it takes half a minute of one core while the sessions
# mostly wait for their engines to start).
scripts/typecheck.sh 2>&1 | sed -u "s/^/[types] /" &
types=$!
session 1 "${first[@]}" &
one=$!
session 2 "${second[@]}" "$sweep" &
two=$!
status=0
wait "$types" || status=$?
wait "$one" || status=$?
wait "$two" || status=$?
exit "$status"
