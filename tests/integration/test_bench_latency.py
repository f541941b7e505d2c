"""`hotline bench latency` against the session's system prints every figure of every load level
in the shape every benchmark's `--json` has, and `hotline bench chart` draws them as a PNG; bad
input to either is a clear CLI error (no time is asserted: the figures are the machine's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hotline.cli.engines.local import LocalSystem
from tests.support.cli import hotline
from tests.support.registry import AdminApi, Party

FIELDS = {"figure", "value", "unit", "anchor", "anchor_value", "ratio", "better"}
HOPS = ("triaged", "alert", "audit entry", "checkpoint")
TARGETED = {"alert": 1000.0, "audit entry": 1000.0, "checkpoint": 2000.0}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def latency_lines(system: LocalSystem) -> list[str]:
    """A small sweep: 3 urgent reports at 2 and at 4 reports/s (reports are sealed to the
    factory's recipients, so an operator key must be registered)."""
    AdminApi(system.settings).created("operator-keys", {"public_key": Party.new().public_b64})
    result = hotline("bench", "latency", "--reports", "3", "--load", "2,4", "--json")
    assert "anchor: 3 raw hops" in result.stderr  # progress goes to stderr
    return result.stdout.splitlines()


def test_bench_latency_prints_every_hop_at_every_load(latency_lines: list[str]) -> None:
    figures: list[dict[str, Any]] = [json.loads(line) for line in latency_lines]
    for figure in figures:
        assert FIELDS <= set(figure), figure
        assert figure["unit"] == "ms" and figure["better"] == "lower", figure
        assert figure["value"] > 0 and figure["anchor_value"] > 0, figure
        assert figure["ratio"] == round(figure["value"] / figure["anchor_value"], 3), figure
        assert figure["reports"] == 3, figure
    for load in (2.0, 4.0):
        level = [f for f in figures if f["load"] == load]
        raw = {(f["hop"], f["percentile"]): f for f in level if f["anchor_kind"] == "raw hop"}
        assert set(raw) == {(hop, p) for hop in HOPS for p in (50, 99)}, level
        assert all(f["anchor"].startswith("raw hop: insert, Kafka acks=all") for f in raw.values())
        # One raw hop per level: p50 and p99 of the same anchor for every hop.
        assert len({f["anchor_value"] for f in raw.values() if f["percentile"] == 50}) == 1
        for hop in HOPS:
            assert raw[(hop, 50)]["value"] <= raw[(hop, 99)]["value"], hop
        targets = {f["hop"]: f for f in level if f["anchor_kind"] == "target"}
        assert {hop: f["anchor_value"] for hop, f in targets.items()} == TARGETED
        assert all(f["anchor"] == "issue 20's p99 target" for f in targets.values())
        # A report is in the log before a checkpoint covers it.
        assert raw[("audit entry", 50)]["value"] <= raw[("checkpoint", 50)]["value"]
    assert len(figures) == 2 * (len(HOPS) * 2 + len(TARGETED))


def test_bench_chart_draws_the_latency_figures_as_a_png(
    latency_lines: list[str], tmp_path: Path
) -> None:
    source = tmp_path / "latency.jsonl"
    source.write_text("\n".join(latency_lines) + "\n", encoding="utf-8")
    chart = tmp_path / "latency.png"
    result = hotline("bench", "chart", "--from", str(source), "--out", str(chart))
    assert str(chart) in result.stdout
    assert chart.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(chart) as image:
        image.verify()
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0


def test_bench_chart_says_what_is_wrong_with_its_input(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    missing = hotline(
        "bench", "chart", "--from", str(tmp_path / "absent.jsonl"), "--out", str(out), check=False
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    result = hotline("bench", "chart", "--from", str(empty), "--out", str(out), check=False)
    assert result.returncode == 1 and f"{empty} is empty" in result.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"figure": "x", "value": 1}\n{"figure": \n', encoding="utf-8")
    result = hotline("bench", "chart", "--from", str(bad), "--out", str(out), check=False)
    assert result.returncode == 1 and f"{bad}, line 2: not JSON" in result.stderr

    other = tmp_path / "other.jsonl"
    other.write_text('{"figure": "seal one report", "value": 1}\n', encoding="utf-8")
    result = hotline("bench", "chart", "--from", str(other), "--out", str(out), check=False)
    assert result.returncode == 1 and "no latency figures" in result.stderr
    assert not out.exists(), "nothing is written from bad input"


def test_bench_latency_refuses_a_bad_load() -> None:
    for load in ("fast", "0", "1,-2"):
        result = hotline("bench", "latency", "--load", load, check=False)
        assert result.returncode == 2 and "--load" in result.stderr, load
