"""`hotline bench chart`: latency under rising load, drawn from `hotline bench latency --json`.

One line per hop and percentile (p50 solid, p99 dashed) against the submission rate, the
raw hop of the same runs in grey, and the issue's p99 targets as dotted lines. matplotlib
draws it off screen (the Agg backend): no display is needed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from .latency import HOPS, TARGETS_MS

# One colour per hop, in HOPS' order (matplotlib's default cycle, named for readability).
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")
RAW_COLOUR = "tab:gray"


def read_figures(source: Path) -> list[dict[str, Any]]:
    """Every figure of a JSON-lines file; a clear error for anything that is not one."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {source}: {exc}") from None
    figures = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            figure = json.loads(line)
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{source}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(figure, dict):
            raise click.ClickException(f"{source}, line {number}: not a JSON object")
        figures.append(figure)
    if not figures:
        raise click.ClickException(
            f"{source} is empty: give it the output of `hotline bench latency --json`"
        )
    return figures


def latency_series(
    figures: list[dict[str, Any]],
) -> tuple[dict[tuple[str, int], dict[float, float]], dict[int, dict[float, float]]]:
    """(hop, percentile) -> {load: ms}, and percentile -> {load: raw hop ms}, from the
    latency figures whose anchor is the raw hop (the target figures repeat the p99)."""
    measured: dict[tuple[str, int], dict[float, float]] = defaultdict(dict)
    raw: dict[int, dict[float, float]] = defaultdict(dict)
    for figure in figures:
        if figure.get("anchor_kind") != "raw hop" or figure.get("hop") not in HOPS:
            continue
        try:
            load = float(figure["load"])
            percentile = int(figure["percentile"])
            value, anchor = float(figure["value"]), float(figure["anchor_value"])
        except (KeyError, TypeError, ValueError):
            raise click.ClickException(
                f"a latency figure without a numeric load, percentile, value or anchor_value: "
                f"{json.dumps(figure)[:200]}"
            ) from None
        measured[(figure["hop"], percentile)][load] = value
        raw[percentile][load] = anchor
    return measured, raw


@click.command("chart")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON lines from `hotline bench latency --json` (one or more load levels).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The PNG to write.",
)
def bench_chart(source: Path, out: Path) -> None:
    """Draw p50 and p99 of each latency hop against the submission rate, beside the raw
    hop, from `hotline bench latency --json` output, as a PNG."""
    measured, raw = latency_series(read_figures(source))
    if not measured:
        raise click.ClickException(
            f"{source} has no latency figures (lines of `hotline bench latency --json`)"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise click.ClickException(
            "matplotlib is not installed in this environment: it comes with the project's "
            "`test` extra (pip install -e '.[test]'; scripts/install.sh does it)"
        ) from None

    figure, axes = pyplot.subplots(figsize=(9, 5.5), dpi=120)
    for colour, (hop, label) in zip(COLOURS, HOPS.items(), strict=True):
        for percentile, style in ((50, "-"), (99, "--")):
            points = sorted(measured.get((hop, percentile), {}).items())
            if points:
                loads, values = zip(*points, strict=True)
                axes.plot(
                    loads, values, style, marker="o", color=colour, label=f"{label}, p{percentile}"
                )
    for percentile, style in ((50, "-"), (99, "--")):
        points = sorted(raw.get(percentile, {}).items())
        if points:
            loads, values = zip(*points, strict=True)
            axes.plot(
                loads,
                values,
                style,
                marker=".",
                color=RAW_COLOUR,
                label=f"raw hop (insert, Kafka, consumer, insert), p{percentile}",
            )
    for target in sorted(set(TARGETS_MS.values())):
        axes.axhline(target, linestyle=":", color="black", linewidth=1)
        axes.annotate(
            f"p99 target {target / 1000:g} s",
            (0, target),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=8,
        )
    axes.set_yscale("log")
    axes.set_xlabel("submission rate (urgent reports/s)")
    axes.set_ylabel("latency from POST /api/reports (ms, log scale)")
    axes.set_title("Urgent report latency under rising load (hotline bench latency)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    try:
        figure.savefig(out, format="png")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from None
    finally:
        pyplot.close(figure)
    click.echo(f"wrote {out}")
