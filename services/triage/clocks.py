"""The regulation clocks of a case, and the scheduler that publishes their breaches.

A clock runs from triage until what it waits for happens, and breaches if its due time
passes first. The rules (`RULES`, with their legal source):

- `acknowledgement`: 7 days after receipt, 24 hours for a critical case (EU Directive
  2019/1937 Art. 9(1)(b): acknowledge within seven days; the hotline's own rule for
  critical cases). Stops at the first acknowledgement (a message or the status move).
- `first-action`: critical cases only, 4 hours after receipt (the hotline's escalation
  practice, as ICTI CARE refers urgent cases at once). Stops at the operator's first act on
  the case: a claim, a status change, any message an operator posts.
- `feedback`: Art. 9(1)(f): feedback within three months of the acknowledgement or, if none
  was sent, of the end of the seven-day period. It starts at triage due 7 days + 3 calendar
  months after receipt, and starts again at the first acknowledgement, due 3 months after
  it. Stops at the first feedback message.
- A final status (resolved, closed) stops every clock still running: a closed case is owed
  nothing more. `met` says whether a clock stopped before its due time, not what stopped
  it: the status change beside it in the log says that.

The state lives on the case document, `clocks.<name>` = {due, state, met}: state `running`,
`breached` (running past its due time, the breach published) or `stopped` (`met`: it
stopped before its due time and never breached). `clock_next` is CLOCK_KEY_PREFIX and the
earliest due time of the running clocks, the single-field key the scheduler's range read
uses (None when nothing runs), and `breached` lists the clocks running past due (the
operator's queue shows it). Every start, stop and breach is an event written by the same
guarded write (`cases.update_case`, or the triaged case's insert) as the state it changes.

Due times are hours (a case is received at an hour) and a stop is dated by its hour, so
"stopped in hour H, due D" is met exactly when H < D: both are on hour boundaries.

The scheduler (`watch_clocks`) runs in every triage replica: each round reads the cases
whose `clock_next` is past (one indexed range read) and marks their due clocks breached
with one guarded write each, so of two replicas racing over a case one write wins and the
breach is published once. A round runs every POLL seconds, and at once when a test moves
its ManualClock: from the moved clock to the breach on Kafka took 12-57 ms here
(tests/integration/test_clocks.py measures it).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

from hotline.shared.clock import Clock as TimeSource
from hotline.shared.clock import iso_z, parse_iso, run_every
from hotline.shared.events import (
    Clock,
    ClockBreached,
    ClockStarted,
    ClockStopped,
    Event,
    new_event,
)
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .cases import Change, update_case
from .collections import CLOCK_KEY_PREFIX, TRIAGE_CASES
from .contract import FINAL_STATUSES

log = logging.getLogger("hotline.triage.clocks")

CLOCKS: tuple[Clock, ...] = get_args(Clock)
ACKNOWLEDGE_WITHIN = timedelta(days=7)  # Art. 9(1)(b)
ACKNOWLEDGE_CRITICAL_WITHIN = timedelta(hours=24)  # the hotline's rule for critical cases
FIRST_ACTION_WITHIN = timedelta(hours=4)  # critical cases only
FEEDBACK_MONTHS = 3  # Art. 9(1)(f): calendar months from the acknowledgement (or day 7)

RUNNING, BREACHED, STOPPED = "running", "breached", "stopped"
POLL = 30.0  # seconds between scheduler rounds (due times are hours)
BATCH = 200  # cases a round reads at a time


# --- the rules -------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` `months` calendar months later (the 31st becomes the month's last day)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class ClockRule:
    due: Callable[[datetime, bool], datetime]  # from the receipt, for a critical case or not
    critical_only: bool
    # What stops it: "claim", "status" (any move), "status:<status>", "message" (any kind an
    # operator posts), "message:<kind>". A final status stops every clock.
    stopped_by: frozenset[str]


RULES: dict[Clock, ClockRule] = {
    # EU Directive 2019/1937 Art. 9(1)(b): acknowledge receipt within seven days; a critical
    # case within 24 hours (the hotline's own rule: its worker may be in danger).
    "acknowledgement": ClockRule(
        due=lambda received, critical: (
            received + (ACKNOWLEDGE_CRITICAL_WITHIN if critical else ACKNOWLEDGE_WITHIN)
        ),
        critical_only=False,
        stopped_by=frozenset({"status:acknowledged", "message:acknowledgement"}),
    ),
    # The hotline's escalation practice (ICTI CARE refers urgent cases at once): an
    # operator acts on a critical case within 4 hours; any act of theirs counts.
    "first-action": ClockRule(
        due=lambda received, _: received + FIRST_ACTION_WITHIN,
        critical_only=True,
        stopped_by=frozenset({"claim", "status", "message"}),
    ),
    # Art. 9(1)(f): feedback within three months of the acknowledgement or, if none was
    # sent, of the end of the seven-day period (`restarted_by_acknowledgement`).
    "feedback": ClockRule(
        due=lambda received, _: add_months(received + ACKNOWLEDGE_WITHIN, FEEDBACK_MONTHS),
        critical_only=False,
        stopped_by=frozenset({"message:feedback"}),
    ),
}
assert set(RULES) == set(CLOCKS), "a rule for every clock"


def clocks_at_triage(severity: str, received: datetime) -> dict[Clock, datetime]:
    """The clocks a case starts with and their due times."""
    critical = severity == "critical"
    return {
        name: rule.due(received, critical)
        for name, rule in RULES.items()
        if critical or not rule.critical_only
    }


def restarted_by_acknowledgement(case: Document, hour: str) -> dict[Clock, str]:
    """The clocks the case's first acknowledgement (in `hour`) starts again, with their new
    due times: feedback, 3 months after it ({} for a later acknowledgement)."""
    if case.get("acknowledged") is not None:
        return {}
    return {"feedback": iso_z(add_months(parse_iso(hour), FEEDBACK_MONTHS))}


def stopped_by(*actions: str) -> frozenset[Clock]:
    """The clocks that any of `actions` stops (RULES' `stopped_by` names)."""
    return frozenset(name for name, rule in RULES.items() if rule.stopped_by & set(actions))


def stopped_by_status(status: str) -> frozenset[Clock]:
    """The clocks a move to `status` stops (all of them for a final status)."""
    if status in FINAL_STATUSES:
        return frozenset(CLOCKS)
    return stopped_by("status", f"status:{status}")


def stopped_by_message(kind: str) -> frozenset[Clock]:
    """The clocks an operator's message of `kind` stops."""
    return stopped_by("message", f"message:{kind}")


# --- the state on the case -------------------------------------------------------------------


def clock_next(clocks: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The scheduler key of a case with these clocks: when its next running clock falls due."""
    dues = [str(state["due"]) for state in clocks.values() if state.get("state") == RUNNING]
    return CLOCK_KEY_PREFIX + min(dues) if dues else None


def overdue(clocks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The clocks running past their due time (breach published, not stopped yet)."""
    return sorted(name for name, state in clocks.items() if state.get("state") == BREACHED)


def initial_clocks(case_id: str, severity: str, received: datetime) -> tuple[Document, list[Event]]:
    """The clock fields of a newly triaged case, and its `clock.started` events."""
    dues = {name: iso_z(due) for name, due in clocks_at_triage(severity, received).items()}
    clocks: dict[str, dict[str, Any]] = {
        name: {"due": due, "state": RUNNING, "met": None} for name, due in dues.items()
    }
    events = [new_event(case_id, ClockStarted(clock=name, due=due)) for name, due in dues.items()]
    fields = {"clocks": clocks, "clock_next": clock_next(clocks), "breached": overdue(clocks)}
    return fields, events


def _fields(clocks: Mapping[str, Mapping[str, Any]], changed: Iterable[str]) -> Document:
    fields: Document = {f"clocks.{name}": dict(clocks[name]) for name in changed}
    fields["clock_next"] = clock_next(clocks)
    fields["breached"] = overdue(clocks)
    return fields


def clock_changes(
    case: Document,
    hour: str,
    stop: Iterable[Clock] = (),
    restart: Mapping[Clock, str] | None = None,
) -> Change:
    """The fields and events that stop the `stop` clocks still running on `case` in `hour`
    and start the running `restart` clocks again with new due times ({} and [] if none of
    them runs). A case triaged before the clocks existed has none."""
    restart = restart or {}
    stop = frozenset(stop)
    clocks: dict[str, dict[str, Any]] = {
        name: dict(state) for name, state in (case.get("clocks") or {}).items()
    }
    events: list[Event] = []
    changed: list[str] = []
    for name in CLOCKS:  # in a fixed order, so the events are too
        state = clocks.get(name)
        if state is None or state["state"] == STOPPED:
            continue
        if name in stop:
            met = state["state"] == RUNNING and hour < state["due"]
            clocks[name] = {**state, "state": STOPPED, "met": met}
            events.append(new_event(case["_id"], ClockStopped(clock=name, met=met)))
            changed.append(name)
        elif name in restart and state["state"] == RUNNING:
            clocks[name] = {**state, "due": restart[name]}
            events.append(new_event(case["_id"], ClockStarted(clock=name, due=restart[name])))
            changed.append(name)
    return (_fields(clocks, changed) if changed else {}), events


def breaches(case: Document, now: str) -> Change | None:
    """Mark the running clocks of `case` due before `now` breached, with a `clock.breached`
    each; None if there is none (another scheduler did it, or the case moved on). A stale
    `clock_next` is corrected without an event, so the range read does not return it again."""
    clocks: dict[str, dict[str, Any]] = {
        name: dict(state) for name, state in (case.get("clocks") or {}).items()
    }
    events: list[Event] = []
    changed: list[str] = []
    for name in CLOCKS:
        state = clocks.get(name)
        if state is None or state["state"] != RUNNING or not state["due"] < now:
            continue
        clocks[name] = {**state, "state": BREACHED}
        events.append(new_event(case["_id"], ClockBreached(clock=name, due=state["due"])))
        changed.append(name)
    if not changed:
        expected = clock_next(clocks)
        return None if case.get("clock_next") == expected else ({"clock_next": expected}, [])
    return _fields(clocks, changed), events


# --- the scheduler ---------------------------------------------------------------------------


async def breach_round(runtime: Runtime, now: datetime) -> int:
    """One round of the scheduler at time `now`: publish the breach of every running clock
    due before it; return how many breaches this round published (a race lost to another
    scheduler publishes none)."""
    now_text = iso_z(now)
    due_before = {"$gte": CLOCK_KEY_PREFIX, "$lt": CLOCK_KEY_PREFIX + now_text}
    published = 0
    while True:
        found = (
            runtime.store.db[TRIAGE_CASES.name]
            .find({"clock_next": due_before}, {"_id": 1})
            .sort("clock_next", 1)
            .limit(BATCH)
        )
        case_ids = [doc["_id"] async for doc in found]  # read in full before writing
        changed = 0
        for case_id in case_ids:
            written, breached = await _breach_case(runtime, case_id, now_text)
            changed += written
            published += breached
        if len(case_ids) < BATCH or changed == 0:
            return published


async def _breach_case(runtime: Runtime, case_id: str, now: str) -> tuple[bool, int]:
    """Whether this scheduler's write of the case's breaches won, and how many it published."""
    decided: list[Change | None] = []

    def decide(case: Document) -> Change | None:
        decided[:] = [breaches(case, now)]  # the last decision is the one written
        return decided[0]

    written = await update_case(runtime, case_id, decide)
    change = decided[0] if written and decided else None
    return written, len(change[1]) if change else 0


async def watch_clocks(runtime: Runtime, clock: TimeSource) -> None:
    """The breach scheduler: a round now, then one each time `clock` moves or POLL passes."""
    await run_every(
        clock, POLL, lambda: breach_round(runtime, clock.now()), log, "clock round failed"
    )
