"""`hotline bench browser` keeps working: a small run against the session's system prints every
figure (no time is asserted), and a system that is not up is said plainly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hotline.cli.engines.process import free_port
from hotline.shared.config import Settings
from tests.support.cli import hotline

# Every figure the bench prints, by the start of its name.
FIGURES = [
    "page weight before the worker (",
    "page weight before the worker, as transferred",
    "crypto worker's own bytes (",
    "crypto worker's own bytes, as transferred",
    "throttle check, renderer stop/resume at 2x throttle",
    "Argon2id derive in the worker, unthrottled",
    "Argon2id derive in the worker, 2x throttle",
    "seal a 2,000-byte report to 4+1 keys, unthrottled",
    "seal a 2,000-byte report to 4+1 keys, 2x throttle",
    "seal a 1,000,000-byte attachment to 4 keys, unthrottled",
    "seal a 1,000,000-byte attachment to 4 keys, 2x throttle",
    "proof of work, resting difficulty",
    "proof of work, flood difficulty 8 bits, unthrottled",
    "proof of work, flood difficulty 8 bits, 2x throttle",
    "Argon2id unlock on the status page, unthrottled",
    "Argon2id unlock on the status page, 2x throttle",
]
FIELDS = {"figure", "value", "unit", "anchor", "anchor_value", "ratio", "better"}


def test_bench_browser_prints_every_figure(
    system: Any, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench's own settings only: a flood difficulty of 2 + 6 bits keeps the run short.
    monkeypatch.setenv("HOTLINE_POW_DIFFICULTY", "2")
    result = hotline(
        "bench",
        "browser",
        "--intake",
        test_settings.intake_url,
        "--rounds",
        "1",
        "--throttle",
        "2",
        "--json",
    )
    figures = [json.loads(line) for line in result.stdout.splitlines()]
    names = [figure["figure"] for figure in figures]
    for expected in FIGURES:
        assert any(name.startswith(expected) for name in names), f"{expected!r} in {names}"
    anchors = {figure["anchor"] for figure in figures}
    assert {"issue 16's target", "PyNaCl derive_receipt in this process"} <= anchors
    for figure in figures:
        assert FIELDS <= set(figure) and figure["better"] in ("higher", "lower"), figure
        assert figure["value"] > 0 and figure["anchor_value"] > 0, figure
        assert figure["ratio"] == round(figure["value"] / figure["anchor_value"], 3), figure
    weights = {figure["figure"]: figure for figure in figures if figure["unit"] == "bytes"}
    assert all(figure["anchor_value"] == 100_000 for figure in weights.values())
    assert "starting the crypto worker" in result.stderr  # progress goes to stderr


def test_bench_browser_says_when_intake_is_not_up() -> None:
    intake = f"http://127.0.0.1:{free_port()}"
    result = hotline("bench", "browser", "--intake", intake, check=False)
    assert result.returncode == 1
    assert f"intake does not answer at {intake}" in result.stderr
    assert "hotline up" in result.stderr
    assert result.stdout == ""
