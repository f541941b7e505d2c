"""One benchmark figure beside its anchor, printed for a person or as one JSON object a line.

Every `hotline bench` command reports through `Figure`, so `--json` has the same shape
everywhere: figure, value, unit, anchor, anchor_value, ratio (value over anchor) and better
("higher" for rates, "lower" for times and costs), plus whatever a benchmark adds in `extra`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import click

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="One JSON object per figure.")


@dataclass(frozen=True)
class Figure:
    figure: str
    value: float
    unit: str
    anchor: str
    anchor_value: float
    better: Literal["higher", "lower"]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Value over anchor; None when the anchor is zero (nothing to compare with)."""
        return round(self.value / self.anchor_value, 3) if self.anchor_value else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "anchor": self.anchor,
            "anchor_value": self.anchor_value,
            "ratio": self.ratio,
            "better": self.better,
            **self.extra,
        }

    def line(self) -> str:
        ratio = "n/a" if self.ratio is None else f"{self.ratio}x"
        return (
            f"{self.figure}: {self.value} {self.unit} (anchor, {self.anchor}: "
            f"{self.anchor_value} {self.unit}; ratio {ratio}, {self.better} is better)"
        )


def echo_figure(figure: Figure, as_json: bool) -> None:
    """Print one figure on stdout: a JSON object (one line) or a sentence."""
    click.echo(json.dumps(figure.as_dict(), ensure_ascii=False) if as_json else figure.line())
