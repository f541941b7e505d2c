"""`hotline bench audit` keeps working: a small run prints every figure (no time is asserted)."""

from __future__ import annotations

import re

from tests.support.cli import hotline


def test_bench_audit_prints_every_figure_for_each_size() -> None:
    result = hotline("bench", "audit", "--sizes", "300,1000")
    out = result.stdout
    assert re.search(r"one event per write\s*:\s*[\d,]+ events/s", out)
    assert re.search(r"batches of 500 \(consumer\):\s*[\d,]+ events/s", out)
    header = "entries  seq ev/s  integrate  tiles req/s  proof ms  +fetch ms  verify s"
    assert header in out
    for size in ("300", "1,000"):
        row = re.search(rf"^\s*{size}\s+([\d,.]+s?\s+){{7,}}", out, re.MULTILINE)
        assert row, f"a row of figures for {size} entries:\n{out}"
    assert "growth 300 -> 1,000 entries" in out


def test_bench_audit_refuses_bad_sizes() -> None:
    result = hotline("bench", "audit", "--sizes", "ten", check=False)
    assert result.returncode == 2 and "--sizes" in result.stderr
