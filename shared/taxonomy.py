"""The category taxonomy, loaded from the one data file `taxonomy.json` of this package
(read through importlib.resources, so an installed wheel finds it too)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

TAXONOMY_FILE = files("hotline.shared") / "taxonomy.json"


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
