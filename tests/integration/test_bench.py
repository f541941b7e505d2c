"""The benchmarks that start their own engines keep working: a small run prints every figure,
for a person and with `--json` (no time is asserted)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.cli import hotline


def test_bench_audit_prints_every_figure_for_each_size() -> None:
    result = hotline(
        "bench",
        "audit",
        "--sizes",
        "100,300",
        "--sequenced",
        "2000",
        "--tile-requests",
        "200",
        "--proofs",
        "50",
    )
    out = result.stdout
    assert re.search(r"one event per write\s*:\s*[\d,]+ events/s", out)
    assert re.search(r"batches of 500 \(consumer\):\s*[\d,]+ events/s", out)
    header = "entries  seq ev/s  integrate  tiles req/s  proof ms  +fetch ms  verify s"
    assert header in out
    for size in ("100", "300"):
        row = re.search(rf"^\s*{size}\s+([\d,.]+s?\s+){{7,}}", out, re.MULTILINE)
        assert row, f"a row of figures for {size} entries:\n{out}"
    assert "growth 100 -> 300 entries" in out


def test_bench_audit_refuses_bad_sizes() -> None:
    result = hotline("bench", "audit", "--sizes", "ten", check=False)
    assert result.returncode == 2 and "--sizes" in result.stderr
    for option in ("--tile-requests", "--proofs"):
        result = hotline("bench", "audit", option, "0", check=False)
        assert result.returncode == 2 and option in result.stderr


# --- `--json`: one object per figure, in the shape every benchmark shares (issue 20) --------

FIELDS = {"figure", "value", "unit", "anchor", "anchor_value", "ratio", "better"}


def json_figures(*args: str) -> list[dict[str, Any]]:
    """The figures of `hotline bench ARGS --json`: every stdout line one JSON object."""
    lines = hotline("bench", *args, "--json").stdout.splitlines()
    figures = [json.loads(line) for line in lines]
    assert figures, "at least one figure"
    for figure in figures:
        assert FIELDS <= set(figure), figure
        assert figure["better"] in ("higher", "lower"), figure
        if figure["anchor_value"]:
            assert figure["ratio"] == pytest.approx(
                figure["value"] / figure["anchor_value"], rel=0.01, abs=0.001
            ), figure
        else:
            assert figure["ratio"] is None, figure
    return figures


def test_bench_digests_json_has_every_figure_beside_its_anchor() -> None:
    figures = json_figures("digests", "--digests", "400", "--rounds", "1")
    names = [figure["figure"] for figure in figures]
    for page in (50, 200):
        for which in ("first", "last"):
            assert f"pull of {page} per page, {which} page" in names
    pulls = [f for f in figures if f["figure"].startswith("pull of")]
    assert {f["anchor"] for f in pulls} == {"a raw indexed find of the same documents"}
    assert all(f["unit"] == "ms" and f["better"] == "lower" and f["digests"] == 400 for f in pulls)
    assert all(f["value"] > 0 and f["anchor_value"] > 0 for f in figures)


def test_bench_queue_json_has_every_figure_beside_its_anchor() -> None:
    figures = json_figures("queue", "--cases", "2000", "--rounds", "1")
    names = [figure["figure"] for figure in figures]
    assert names == [
        "whole queue, first page of 50, at 2,000 cases",
        "whole queue, page at 90% of 50, at 2,000 cases",
        "status=received, first page of 50, at 2,000 cases",
        "status=received, page at 90% of 50, at 2,000 cases",
        "for scale, every case sorted by due in one find, at 2,000 cases",
    ]
    assert all(f["cases"] == 2000 and f["value"] > 0 for f in figures)


def test_bench_relay_json_counts_the_documents_a_pass_reads() -> None:
    figures = json_figures("relay", "--cases", "300", "--passes", "1")
    by_anchor = {figure["anchor"]: figure for figure in figures}
    read = by_anchor["none: every case is published"]
    assert read["value"] == 0 and read["unit"] == "documents", read
    assert "INDEX" in read["plan"], "the relay's query uses an index"
    assert by_anchor["full scan (count, unindexed field)"]["unit"] == "ms"
