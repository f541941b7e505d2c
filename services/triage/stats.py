"""Statistics for the annual effectiveness review (LkSG s.8, UNGP 31), and a factory's own
delayed, weekly view. docs/statistics.md is the reader's guide.

- `GET /api/stats` (roles triage-analyst, compliance-officer): one row per factory x
  category x month of receipt: `cases`, `acknowledged`, `resolved_or_closed` (a final
  status), and median and 90th-percentile hours to acknowledge (`acknowledged - received`)
  and to resolve (`closed - received`). `from` / `to` (YYYY-MM, both included) and `factory`
  narrow it; `format=csv` or `Accept: text/csv` answers CSV, same rows and suppression.
- `GET /api/stats/factory` (role factory-manager, its `org` claim = the factory): the
  factory's cases per category and ISO week, only of weeks that ended at least
  `FACTORY_DELAY` before now (`app.state.clock`); counts only, nothing per case, no time
  finer than the week.

Rules, applied here and nowhere else:
- A case counts in each of its categories: a report of wages and hours is in the wages row
  and in the hours row, so rows summed over categories count it twice.
- Small counts: a cell (row) of fewer than `SUPPRESS_BELOW` cases shows "<5" in every count
  and no time. In a shown cell a count from 1 to 4 shows "<5" (zero is shown: it reveals
  nobody's report), and so does a count 1 to 4 short of the cell's `cases` (6 cases, 5
  acknowledged would say that one worker's case was not); a time is shown only when at
  least `SUPPRESS_BELOW` cases give it (the median of three cases is one worker's case).
  The factory's weekly counts likewise (one count a row: `cases`).
- No totals, by design: every row is one atomic cell, and every query (whatever its filters)
  returns atomic cells, never a sum of them; so no total exists to subtract a shown cell
  from, and no two queries differ by a suppressed cell. Complementary suppression would be
  needed otherwise, and with a case counted in several categories a total is not even the
  sum of its rows. A reader who adds rows up knows each "<5" only as 1 to 4.
- The read: one pass over the cases (`read_cases`), projected to the six fields it needs
  (never an envelope), along the `queue_factory` index when one factory is asked for. It
  costs O(cases read), fine for a yearly report (docs/statistics.md has the measurement).
  Months are selected here, not in the query: a range bound that starts like an ISO time
  matches nothing on nx-27017 (cases.py `key_prefix`).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel

from hotline.shared.auth import Principal, require_org_match
from hotline.shared.clock import parse_iso
from hotline.shared.deps import FactoryManagerDep, OperatorOrComplianceDep, Role, RuntimeDep
from hotline.shared.registry import FACTORY_CODE
from hotline.shared.service import Runtime

from .cases import key_prefix, prefix_end, queue_key_for
from .collections import TRIAGE_CASES
from .contract import FINAL_STATUSES

stats = APIRouter(prefix="/api/stats", tags=["statistics"])

SUPPRESS_BELOW = 5
SUPPRESSED: Literal["<5"] = "<5"
FACTORY_DELAY = timedelta(days=7)  # a week is shown to its factory 7 days after it ended
# YYYY-MM of a year 0001 to 9999, as a date has. ASCII digits: `\d` admits any script's.
MONTH = r"^(?:[1-9][0-9]{3}|0(?:[1-9][0-9]{2}|0[1-9][0-9]|00[1-9]))-(?:0[1-9]|1[0-2])$"
# What the read projects: the fields the figures are made of, never an envelope.
READ_FIELDS = {
    "factory": 1,
    "categories": 1,
    "received": 1,
    "acknowledged": 1,
    "closed": 1,
    "status": 1,
}

Count = int | Literal["<5"]
Format = Literal["json", "csv"]


# --- the figures (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseTimes:
    """What statistics know of one case: where, what, and its hours (no content)."""

    factory: str
    categories: tuple[str, ...]
    received: datetime
    acknowledged: datetime | None
    closed: datetime | None
    final: bool  # resolved or closed


def _time_or_none(text: str | None) -> datetime | None:
    return parse_iso(text) if text else None


def case_times(doc: dict[str, Any]) -> CaseTimes:
    return CaseTimes(
        factory=doc["factory"],
        categories=tuple(dict.fromkeys(doc["categories"])),  # once per category
        received=parse_iso(doc["received"]),  # a case is received when triage records it
        acknowledged=_time_or_none(doc.get("acknowledged")),
        closed=_time_or_none(doc.get("closed")),
        final=doc.get("status") in FINAL_STATUSES,
    )


def is_small(count: int) -> bool:
    """1 to 4: few enough to point at a worker."""
    return 0 < count < SUPPRESS_BELOW


def shown_count(count: int) -> Count:
    """`count`, or "<5" for 1 to 4."""
    return SUPPRESSED if is_small(count) else count


def shown_part(count: int, cases: int) -> Count:
    """A count of some of a shown cell's `cases`: "<5" if it is 1 to 4, or if it falls 1 to
    4 short of `cases` (the few it leaves out would be revealed by the difference)."""
    return SUPPRESSED if is_small(count) or is_small(cases - count) else count


def hours_between(start: datetime, end: datetime) -> float:
    return (end - start) / timedelta(hours=1)


def median_and_p90(hours: Sequence[float]) -> tuple[float | None, float | None]:
    """The median and the 90th percentile (linear between order statistics, as
    `statistics.quantiles(method="inclusive")`), rounded to 0.1 h; None for both with
    fewer than `SUPPRESS_BELOW` values."""
    if len(hours) < SUPPRESS_BELOW:
        return None, None
    p90 = statistics.quantiles(hours, n=10, method="inclusive")[-1]
    return round(statistics.median(hours), 1), round(p90, 1)


class MonthRow(BaseModel):
    factory: str
    category: str
    month: str  # of receipt, YYYY-MM
    cases: Count
    acknowledged: Count
    resolved_or_closed: Count
    hours_to_acknowledge_median: float | None
    hours_to_acknowledge_p90: float | None
    hours_to_resolve_median: float | None
    hours_to_resolve_p90: float | None


@dataclass
class _Cell:
    cases: int = 0
    final: int = 0
    to_acknowledge: list[float] = field(default_factory=list)
    to_resolve: list[float] = field(default_factory=list)


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def monthly_rows(
    cases: Iterable[CaseTimes], first: str | None = None, last: str | None = None
) -> list[MonthRow]:
    """The review's rows of `cases` received in months `first`..`last` (both included,
    either open), by factory, category, month."""
    cells: dict[tuple[str, str, str], _Cell] = defaultdict(_Cell)
    for case in cases:
        month = month_of(case.received)
        if (first and month < first) or (last and month > last):
            continue
        for category in case.categories:
            cell = cells[(case.factory, category, month)]
            cell.cases += 1
            cell.final += case.final
            if case.acknowledged is not None:
                cell.to_acknowledge.append(hours_between(case.received, case.acknowledged))
            if case.closed is not None:
                cell.to_resolve.append(hours_between(case.received, case.closed))
    return [month_row(key, cell) for key, cell in sorted(cells.items())]


def month_row(key: tuple[str, str, str], cell: _Cell) -> MonthRow:
    """One cell as shown: a cell of fewer than `SUPPRESS_BELOW` cases reads "<5" in every
    count; in a shown cell a count of 1 to 4, or 1 to 4 short of its cases, reads "<5";
    times need that many values."""
    factory, category, month = key
    parts = (len(cell.to_acknowledge), cell.final)
    if cell.cases < SUPPRESS_BELOW:
        shown: list[Count] = [SUPPRESSED] * (1 + len(parts))
    else:
        shown = [cell.cases, *(shown_part(count, cell.cases) for count in parts)]
    acknowledge = median_and_p90(cell.to_acknowledge)
    resolve = median_and_p90(cell.to_resolve)
    return MonthRow(
        factory=factory,
        category=category,
        month=month,
        cases=shown[0],
        acknowledged=shown[1],
        resolved_or_closed=shown[2],
        hours_to_acknowledge_median=acknowledge[0],
        hours_to_acknowledge_p90=acknowledge[1],
        hours_to_resolve_median=resolve[0],
        hours_to_resolve_p90=resolve[1],
    )


class WeekRow(BaseModel):
    week: str  # ISO week of receipt, "2026-W07"
    category: str
    cases: Count


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of `moment`'s ISO week."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def factory_cutoff(now: datetime) -> datetime:
    """The end of the last week a factory may see at `now`: the latest Monday 00:00 at least
    `FACTORY_DELAY` ago. Cases received before it are in weeks that ended long enough ago."""
    return week_start(now - FACTORY_DELAY)


def weekly_rows(cases: Iterable[CaseTimes], now: datetime) -> list[WeekRow]:
    """Cases per ISO week and category, of the weeks that ended `FACTORY_DELAY` before
    `now`, by week then category."""
    cutoff = factory_cutoff(now)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for case in cases:
        if case.received >= cutoff:
            continue
        for category in case.categories:
            counts[(iso_week(case.received), category)] += 1
    return [
        WeekRow(week=week, category=category, cases=shown_count(count))
        for (week, category), count in sorted(counts.items())
    ]


def csv_text(rows: Sequence[BaseModel], columns: Sequence[str]) -> str:
    """The rows as CSV with a header row of `columns` (no value: an empty field)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump())
    return out.getvalue()


MONTH_COLUMNS = tuple(MonthRow.model_fields)
WEEK_COLUMNS = tuple(WeekRow.model_fields)


# --- the read --------------------------------------------------------------------------------


async def read_cases(runtime: Runtime, factory: str | None) -> list[CaseTimes]:
    """Every case (of `factory`, if given), in one projected pass."""
    query: dict[str, Any] = {}
    if factory is not None:
        key = queue_key_for(frozenset({"factory"}))  # a range of exactly this factory's cases
        prefix = key_prefix(key, {"factory": factory})
        query = {key.field: {"$gte": prefix, "$lt": prefix_end(prefix)}, "factory": factory}
    found = runtime.store.db[TRIAGE_CASES.name].find(query, READ_FIELDS)
    return [case_times(doc) async for doc in found]


# --- the API ---------------------------------------------------------------------------------


class Statistics(BaseModel):
    first_month: str | None
    last_month: str | None
    factory: str | None
    suppressed_below: int  # counts 1 to this minus one, or that far short of cases, read "<5"
    rows: list[MonthRow]


class FactoryStatistics(BaseModel):
    factory: str
    through_week: str  # the latest ISO week that may be shown now
    suppressed_below: int
    weeks: list[WeekRow]


def wants_csv(format: Format | None, accept: str | None) -> bool:
    """CSV when `format=csv`, or with no `format` when the Accept header lists text/csv."""
    if format is not None:
        return format == "csv"
    ranges = (part.split(";")[0].strip().lower() for part in (accept or "").split(","))
    return "text/csv" in ranges


def csv_response(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def refuse_factory_managers(principal: Principal) -> None:
    """A factory manager sees its own delayed view only, whatever other role a token adds."""
    if Role.FACTORY_MANAGER in principal.roles:
        raise HTTPException(403, "a factory manager reads /api/stats/factory only")


FromParam = Annotated[str | None, Query(alias="from", pattern=MONTH, description="YYYY-MM")]
ToParam = Annotated[str | None, Query(alias="to", pattern=MONTH, description="YYYY-MM")]
FactoryParam = Annotated[str | None, Query(pattern=FACTORY_CODE.pattern)]
FormatParam = Annotated[Format | None, Query(description="json (default) or csv")]
CSV_ANSWER: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}


@stats.get("", response_model=Statistics, responses=CSV_ANSWER)
async def review_statistics(
    runtime: RuntimeDep,
    reader: OperatorOrComplianceDep,
    first: FromParam = None,
    last: ToParam = None,
    factory: FactoryParam = None,
    format: FormatParam = None,
    accept: Annotated[str | None, Header()] = None,
) -> Statistics | Response:
    """Per factory x category x month of receipt: counts and hours to acknowledge and to
    resolve, small counts suppressed (module docstring)."""
    refuse_factory_managers(reader)
    if first and last and first > last:
        raise HTTPException(422, f"from {first} is after to {last}")
    rows = monthly_rows(await read_cases(runtime, factory), first, last)
    if wants_csv(format, accept):
        return csv_response(csv_text(rows, MONTH_COLUMNS), "hotline-statistics")
    return Statistics(
        first_month=first,
        last_month=last,
        factory=factory,
        suppressed_below=SUPPRESS_BELOW,
        rows=rows,
    )


@stats.get("/factory", response_model=FactoryStatistics, responses=CSV_ANSWER)
async def factory_statistics(
    request: Request,
    runtime: RuntimeDep,
    manager: FactoryManagerDep,
    factory: FactoryParam = None,
    format: FormatParam = None,
    accept: Annotated[str | None, Header()] = None,
) -> FactoryStatistics | Response:
    """The manager's own factory: cases per category and ISO week, delayed (module
    docstring). `factory`, if given, must be the manager's own."""
    if manager.org is None:
        raise HTTPException(403, "this factory manager's token names no factory (org claim)")
    require_org_match(manager, factory or manager.org)
    now: datetime = request.app.state.clock.now()
    rows = weekly_rows(await read_cases(runtime, manager.org), now)
    if wants_csv(format, accept):
        return csv_response(csv_text(rows, WEEK_COLUMNS), "hotline-factory-statistics")
    return FactoryStatistics(
        factory=manager.org,
        through_week=iso_week(factory_cutoff(now) - timedelta(days=1)),
        suppressed_below=SUPPRESS_BELOW,
        weeks=rows,
    )
