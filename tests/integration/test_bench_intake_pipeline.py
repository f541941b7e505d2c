"""`hotline bench intake` and `hotline bench pipeline` keep working: a small run of each
prints every figure with --json in the shape every bench shares (no time is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.support.cli import REPO

SHAPE = {"figure", "value", "unit", "anchor", "anchor_value", "ratio", "better"}
# Each bench starts its own nx-27017, Kafka and services: longer than the CLI helper allows.
BENCH_TIMEOUT_S = 600


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli.main", "bench", *args],
        env=dict(os.environ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )


def _figures(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr[-3000:]
    figures = [json.loads(line) for line in result.stdout.splitlines()]
    for figure in figures:
        assert SHAPE <= figure.keys(), figure
        assert figure["better"] in ("higher", "lower")
    return figures


def _by_name(figures: list[dict[str, Any]], start: str) -> list[dict[str, Any]]:
    found = [figure for figure in figures if figure["figure"].startswith(start)]
    assert found, f"no figure {start!r} in {[f['figure'] for f in figures]}"
    return found


def test_bench_intake_prints_throughput_latency_and_burst() -> None:
    figures = _figures(
        _bench("intake", "--reports", "40", "--clients", "4", "--burst-clients", "20", "--json")
    )
    for name in (
        "intake durable 201s/s at 4 clients",
        "intake 201 latency p50 at 4 clients",
        "intake 201 latency p99 at 4 clients",
        "intake burst 201s/s at 20 clients",
    ):
        (figure,) = _by_name(figures, name)
        assert figure["value"] > 0 and figure["anchor_value"] > 0
        assert figure["ratio"] == round(figure["value"] / figure["anchor_value"], 3)
    (burst,) = _by_name(figures, "intake burst errors and dropped connections at 20 clients")
    assert burst["anchor_value"] == 0 and burst["ratio"] is None
    assert burst["value"] == sum(burst["errors"].values()) + sum(burst["dropped"].values())
    assert burst["accepted"] + burst["value"] == burst["reports"] == 40


def test_bench_pipeline_prints_drain_consumer_and_relay_figures() -> None:
    figures = _figures(_bench("pipeline", "--reports", "40", "--clients", "4", "--json"))
    drains = _by_name(figures, "pipeline drain of 40")
    assert len(drains) == 3
    for figure in drains:  # nothing is drained before intake has answered the last report
        assert figure["value"] >= figure["anchor_value"] > 0
    for name in ("triage", "notify", "audit-log", "intake relay"):
        for figure in _by_name(figures, f"{name} events/s during the drain"):
            assert figure["value"] > 0 and figure["anchor_value"] > 0
    assert len(_by_name(figures, "intake relay events/s over a backlog of 40")) == 2
    [idle] = _by_name(figures, "seconds from the last durable effect until every process is back")
    assert idle["unit"] == "s" and idle["value"] >= 0 and isinstance(idle["idle_reached"], bool)
    processes = {"intake", "triage", "notify", "audit-log", "kafka", "nx-27017"}
    assert set(idle["processes"]) == processes, "every service and both engines are sampled"
    at_rest = _by_name(figures, "CPU of ")
    assert {f["figure"].split()[2] for f in at_rest} == processes
    assert all(f["unit"] == "% of a core" and f["value"] >= 0 for f in at_rest)


def test_bench_intake_and_pipeline_refuse_bad_options() -> None:
    for args, option in (
        (("intake", "--clients", "0"), "--clients"),
        (("intake", "--reports", "3", "--clients", "4"), "--reports"),
        (("intake", "--burst-clients", "0"), "--burst-clients"),
        (("pipeline", "--reports", "ten"), "--reports"),
        (("pipeline", "--clients", "0"), "--clients"),
        (("pipeline", "--replicas", "0"), "--replicas"),
        (("pipeline", "--replicas", "9"), "--replicas"),
    ):
        result = _bench(*args)
        assert result.returncode == 2 and option in result.stderr, (args, result.stderr)
