"""Triage's severity rules: the table is data (`severity-rules.json`, beside this module),
this module reads it and applies it. Pure apart from reading the file.

The table has a version; every rating carries the version that decided it and triage records
it on the case, so editing the file (and its version) changes the ratings of new cases only:
a case keeps the severity, deadline and version it was rated with. The file is read again
when it changes (by modification time), without restarting triage.

A report the worker marks urgent takes the table's `urgent` rule; otherwise the most severe
of its categories decides (a category the table does not name takes `default`). The deadline
is the severity's response hours after receipt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, get_args

from hotline.shared.events import Severity
from hotline.shared.taxonomy import category_codes

RULES_FILE = files("hotline.triage") / "severity-rules.json"
SEVERITIES: tuple[Severity, ...] = get_args(Severity)  # most severe first
# The reason codes a rating records (never free text).
URGENT, CRITICAL, HIGH, NORMAL, LOW = (
    "worker-marked-urgent",
    "critical-category",
    "high-category",
    "default",
    "low-category",
)
CATEGORY_REASON: dict[Severity, str] = {
    "critical": CRITICAL,
    "high": HIGH,
    "normal": NORMAL,
    "low": LOW,
}


class RulesError(ValueError):
    """A rule table that cannot be applied (triage refuses it rather than misrate cases)."""


@dataclass(frozen=True)
class RuleTable:
    version: str
    urgent: Severity  # the severity of a report the worker marks urgent
    categories: dict[str, Severity]
    default: Severity
    response_hours: dict[Severity, int]

    def categories_of(self, severity: Severity) -> frozenset[str]:
        return frozenset(code for code, rated in self.categories.items() if rated == severity)


@dataclass(frozen=True)
class Rating:
    severity: Severity
    reason: str  # a rule code, never free text
    due: datetime
    rule_version: str  # the version of the table that decided it

    @property
    def escalate(self) -> bool:
        return self.severity == "critical"


def _severity(value: Any, where: str) -> Severity:
    if value not in SEVERITIES:
        raise RulesError(f"{where}: {value!r} is not one of {', '.join(SEVERITIES)}")
    severity: Severity = value
    return severity


def parse_rules(data: Any) -> RuleTable:
    """The rule table of a parsed JSON document; RulesError says what is wrong with it."""
    if not isinstance(data, dict):
        raise RulesError("the rule table is a JSON object")
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise RulesError("the rule table needs a version string")
    rated = data.get("categories")
    if not isinstance(rated, dict):
        raise RulesError("categories maps each category code to a severity")
    unknown = set(rated) - category_codes()
    if unknown:
        raise RulesError(f"not taxonomy codes: {', '.join(sorted(unknown))}")
    hours = data.get("response_hours")
    if not isinstance(hours, dict) or set(hours) != set(SEVERITIES):
        raise RulesError(f"response_hours gives hours for exactly {', '.join(SEVERITIES)}")
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hours.values()):
        raise RulesError("response hours are positive whole numbers")
    urgent = data.get("urgent")
    if not isinstance(urgent, dict):
        raise RulesError('urgent is {"severity": ...}')
    return RuleTable(
        version=version,
        urgent=_severity(urgent.get("severity"), "urgent"),
        categories={code: _severity(s, code) for code, s in rated.items()},
        default=_severity(data.get("default"), "default"),
        response_hours={_severity(s, "response_hours"): h for s, h in hours.items()},
    )


def load_rules(path: Path) -> RuleTable:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RulesError(f"cannot read the rule table {path}: {exc}") from None
    return parse_rules(data)


_loaded: dict[Path, tuple[int, RuleTable]] = {}  # path -> (modification time, table)


def current_rules(path: Path | None = None) -> RuleTable:
    """The table in `path` (default: the packaged file), read again once it changes."""
    if path is None:
        with as_file(RULES_FILE) as packaged:
            return current_rules(Path(packaged))
    mtime = path.stat().st_mtime_ns
    cached = _loaded.get(path)
    if cached is None or cached[0] != mtime:
        cached = (mtime, load_rules(path))
        _loaded[path] = cached
    return cached[1]


def rate(
    categories: list[str], urgent: bool, received: datetime, rules: RuleTable | None = None
) -> Rating:
    """Severity, the rule that decided it, the time by which an operator must act, and the
    version of the table (default: the current packaged table)."""
    table = rules or current_rules()
    if urgent:
        severity, reason = table.urgent, URGENT
    else:
        rated = [table.categories.get(code, table.default) for code in categories]
        severity = min(rated or [table.default], key=SEVERITIES.index)
        reason = CATEGORY_REASON[severity]
    due = received + timedelta(hours=table.response_hours[severity])
    return Rating(severity, reason, due, table.version)


# The packaged table's sets, as the unit tests and documentation name them.
_PACKAGED = current_rules()
CRITICAL_CATEGORIES = _PACKAGED.categories_of("critical")
HIGH_CATEGORIES = _PACKAGED.categories_of("high")
RESPONSE_HOURS = _PACKAGED.response_hours
