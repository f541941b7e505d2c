#!/usr/bin/env bash
# Regenerates docs/benchmarks-latency.png: the latency sweep of `hotline bench latency` and
# its chart (docs/benchmarks.md says what it measures).
#
#   scripts/benchmarks.sh            starts a private `hotline up` (its own data directory and
#                                    free ports, notify trusting the bench's CA), registers an
#                                    operator key, runs the sweep, draws, stops the system
#   scripts/benchmarks.sh --running  measures the system already running with this shell's
#                                    HOTLINE_* variables (started with HOTLINE_WEBHOOK_CA_FILE=
#                                    $(hotline bench alerts --print-ca), an operator key added)
#
# LOADS (reports/s, default 1,2,5,10), REPORTS (per load, default 30), OUT (the JSON lines,
# default build/benchmarks/latency.jsonl) and CHART (default docs/benchmarks-latency.png)
# change what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
LOADS=${LOADS:-1,2,5,10}
REPORTS=${REPORTS:-30}
OUT=${OUT:-build/benchmarks/latency.jsonl}
CHART=${CHART:-docs/benchmarks-latency.png}
hotline=(.venv/bin/python -m hotline.cli.main)
mkdir -p "$(dirname "$OUT")"

if [[ "${1:-}" != "--running" ]]; then
  work=$(mktemp -d -t hotline-benchmarks-XXXXXX)
  export HOTLINE_DATA="$work/data" XDG_CONFIG_HOME="$work/config"
  names=(KAFKA KAFKA_CONTROLLER KEYCLOAK MONGO INTAKE TRIAGE NOTIFY AUDIT)
  # Distinct, and below the ephemeral range: no outgoing connection takes one before its
  # server binds it.
  read -r -a ports <<<"$(.venv/bin/python -c \
    "from hotline.cli.engines.process import free_ports; print(*free_ports(${#names[@]}))")"
  for i in "${!names[@]}"; do
    export "HOTLINE_${names[$i]}_PORT=${ports[$i]}"
  done
  HOTLINE_WEBHOOK_CA_FILE=$("${hotline[@]}" bench alerts --print-ca)
  export HOTLINE_WEBHOOK_CA_FILE
  echo "starting a private hotline up in $work (log: $work/up.log)" >&2
  "${hotline[@]}" up >"$work/up.log" 2>&1 &
  up=$!
  trap 'kill -TERM "$up" 2>/dev/null; wait "$up" 2>/dev/null; rm -rf "$work"' EXIT
  for port in "$HOTLINE_INTAKE_PORT" "$HOTLINE_TRIAGE_PORT" "$HOTLINE_NOTIFY_PORT" \
    "$HOTLINE_AUDIT_PORT"; do
    for _ in $(seq 600); do  # engines and services: a few minutes at most
      curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
      kill -0 "$up" 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
      sleep 1
    done
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null
  done
  "${hotline[@]}" keys generate --out "$work/operator.key" >/dev/null
  "${hotline[@]}" login --user admin >/dev/null
  "${hotline[@]}" admin operator-key add --public-key-file "$work/operator.key.pub" >/dev/null
fi

"${hotline[@]}" bench latency --load "$LOADS" --reports "$REPORTS" --json | tee "$OUT"
"${hotline[@]}" bench chart --from "$OUT" --out "$CHART"
