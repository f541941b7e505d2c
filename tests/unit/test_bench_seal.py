"""`hotline bench seal` prints its figure beside its anchor from the same run, in the shape
every benchmark's `--json` has (issue 20): the figures themselves are the machine's."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hotline.cli.main import cli


def test_bench_seal_prints_its_figure_anchor_and_ratio_as_json() -> None:
    ran = CliRunner().invoke(cli, ["bench", "seal", "--json", "--rounds", "20"])
    assert ran.exit_code == 0, ran.output
    [line] = ran.output.splitlines()
    figure = json.loads(line)
    assert figure["figure"] == "seal one report (4 content + 1 identity recipients)"
    assert figure["unit"] == "µs" and figure["better"] == "lower"
    assert figure["anchor"] == "raw PyNaCl, the same primitives"
    assert figure["value"] > 0 and figure["anchor_value"] > 0
    assert abs(figure["ratio"] - figure["value"] / figure["anchor_value"]) < 0.02


def test_bench_seal_says_its_figures_in_words() -> None:
    ran = CliRunner().invoke(cli, ["bench", "seal", "--rounds", "10", "--content-recipients", "2"])
    assert ran.exit_code == 0, ran.output
    assert "seal one report (2 content + 1 identity recipients):" in ran.output
    assert "anchor, raw PyNaCl, the same primitives" in ran.output
