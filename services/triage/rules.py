"""The first severity rule table: pure, one place to change how a case is rated.

After ICTI CARE's practice (withheld wages, personal safety, stoppage or strikes are
referred at once): a report the worker marks urgent, or one about safety, child labour or
forced labour, is critical and escalated; abuse, wages and harassment are high.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hotline.shared.events import Severity

CRITICAL_CATEGORIES = frozenset({"safety", "child-labour", "forced-labour"})
HIGH_CATEGORIES = frozenset({"abuse", "wages", "harassment"})
RESPONSE_HOURS: dict[Severity, int] = {"critical": 4, "high": 24, "normal": 72}


@dataclass(frozen=True)
class Rating:
    severity: Severity
    reason: str  # a rule code, never free text
    due: datetime

    @property
    def escalate(self) -> bool:
        return self.severity == "critical"


def rate(categories: list[str], urgent: bool, received: datetime) -> Rating:
    """Severity, the rule that decided it, and the time by which an operator must act."""
    severity: Severity
    if urgent:
        severity, reason = "critical", "worker-marked-urgent"
    elif CRITICAL_CATEGORIES & set(categories):
        severity, reason = "critical", "critical-category"
    elif HIGH_CATEGORIES & set(categories):
        severity, reason = "high", "high-category"
    else:
        severity, reason = "normal", "default"
    return Rating(severity, reason, received + timedelta(hours=RESPONSE_HOURS[severity]))
