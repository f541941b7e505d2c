"""The category taxonomy, loaded from the one data file `taxonomy.json` beside this module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.json")


@dataclass(frozen=True)
class Category:
    code: str
    label: str
    hint: str


@cache
def categories(language: str = "en") -> tuple[Category, ...]:
    """Every category, labels in `language` (falling back to English)."""
    data = json.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
    return tuple(
        Category(
            code=c["code"],
            label=c["labels"].get(language, c["labels"]["en"]),
            hint=c["hint"].get(language, c["hint"]["en"]),
        )
        for c in data["categories"]
    )


def category_codes() -> frozenset[str]:
    return frozenset(c.code for c in categories())
