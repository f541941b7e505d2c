"""The severity rule table (hotline.triage.rules): each rule, its precedence, the deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from hotline.shared.events import Severity
from hotline.shared.taxonomy import category_codes
from hotline.triage.rules import CRITICAL_CATEGORIES, HIGH_CATEGORIES, RESPONSE_HOURS, rate

RECEIVED = datetime(2026, 3, 14, 9, tzinfo=UTC)  # events carry hour-coarse times
UNRATED = sorted(category_codes() - CRITICAL_CATEGORIES - HIGH_CATEGORIES)


def test_the_rule_table_names_only_taxonomy_categories() -> None:
    # A misspelt code would never match a report: the rule would silently never fire.
    assert CRITICAL_CATEGORIES <= category_codes()
    assert HIGH_CATEGORIES <= category_codes()
    assert not CRITICAL_CATEGORIES & HIGH_CATEGORIES
    assert UNRATED, "some categories are rated by the default rule"


@pytest.mark.parametrize("categories", [["other"], ["wages"], ["safety"], ["hours", "living"]])
def test_a_report_the_worker_marks_urgent_is_critical_whatever_its_categories(
    categories: list[str],
) -> None:
    rating = rate(categories, True, RECEIVED)
    assert (rating.severity, rating.reason, rating.escalate) == (
        "critical",
        "worker-marked-urgent",
        True,
    )


@pytest.mark.parametrize("category", sorted(CRITICAL_CATEGORIES))
def test_each_critical_category_is_critical_and_escalated(category: str) -> None:
    rating = rate([category], False, RECEIVED)
    assert (rating.severity, rating.reason, rating.escalate) == (
        "critical",
        "critical-category",
        True,
    )


@pytest.mark.parametrize("category", sorted(HIGH_CATEGORIES))
def test_each_high_category_is_high_and_not_escalated(category: str) -> None:
    rating = rate([category], False, RECEIVED)
    assert (rating.severity, rating.reason, rating.escalate) == ("high", "high-category", False)


@pytest.mark.parametrize("category", UNRATED)
def test_every_other_category_is_normal(category: str) -> None:
    rating = rate([category], False, RECEIVED)
    assert (rating.severity, rating.reason, rating.escalate) == ("normal", "default", False)


def test_the_most_severe_category_of_a_report_decides() -> None:
    assert rate(["other", "wages", "child-labour"], False, RECEIVED).severity == "critical"
    assert rate(["hours", "harassment"], False, RECEIVED).severity == "high"
    assert rate(["wages", "hours"], False, RECEIVED).reason == "high-category"


def test_an_urgent_mark_is_the_reason_even_for_a_critical_category() -> None:
    assert rate(["safety"], True, RECEIVED).reason == "worker-marked-urgent"


@pytest.mark.parametrize(
    ("categories", "urgent", "severity", "hours"),
    [
        (["other"], True, "critical", 4),
        (["forced-labour"], False, "critical", 4),
        (["wages"], False, "high", 24),
        (["abuse"], False, "critical", 4),
        (["hours"], False, "normal", 72),
    ],
)
def test_the_deadline_is_the_response_time_of_the_severity_after_receipt(
    categories: list[str], urgent: bool, severity: Severity, hours: int
) -> None:
    rating = rate(categories, urgent, RECEIVED)
    assert rating.severity == severity
    assert RESPONSE_HOURS[severity] == hours
    assert rating.due == RECEIVED + timedelta(hours=hours)
    assert rating.due.tzinfo is UTC


def test_deadlines_shorten_as_severity_rises() -> None:
    assert RESPONSE_HOURS["critical"] < RESPONSE_HOURS["high"] < RESPONSE_HOURS["normal"]
    assert set(RESPONSE_HOURS) == set(get_args(Severity)), "every severity has a deadline"


def test_rating_does_not_depend_on_the_order_of_categories() -> None:
    one = rate(["wages", "safety", "other"], False, RECEIVED)
    other = rate(["other", "safety", "wages"], False, RECEIVED)
    assert one == other
