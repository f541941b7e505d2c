"""Statistics (issue 18): the effectiveness review's `GET /api/stats` and a factory
manager's delayed `GET /api/stats/factory`, against the running services with real Keycloak
tokens, and `hotline stats` over them.

The cases are real reports submitted with `hotline submit` to a factory of this module's own
(the factory filter isolates them from other modules' cases): six of wages alone and two of
wages and hours (each counts in both categories), so the wages cell shows its counts and
the hours cell "<5". All eight are acknowledged and two of them closed, through the
operator's status API, so the acknowledged count and its times show and the closed count
does not. (Five of eight acknowledged would read "<5" too: the three left out would show
in the difference; the pure test at the end checks that rule.)

The running triage reads the machine's clock, and this week's reports are this week's: the
running service shows that they are held back; that they appear once their week has ended
seven days ago is checked on the same route in-process (its real token check and the real
store) with a manual clock moved to that moment.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.intake.app import create_app as create_intake
from hotline.notify.app import create_app as create_notify
from hotline.shared.auth import TokenVerifier, install_token_verifier
from hotline.shared.bus import make_producer
from hotline.shared.clock import ManualClock
from hotline.shared.config import Settings
from hotline.shared.outbox import relay_for
from hotline.shared.roles import Role
from hotline.shared.service import Runtime
from hotline.shared.store import Databases, Store
from hotline.triage.app import create_app as create_triage
from hotline.triage.stats import MONTH_COLUMNS, CaseTimes, monthly_rows, stats
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, unique_factory_code
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

Document = dict[str, Any]
WAIT = 60.0
WAGES_ONLY = 6  # reports of wages alone
BOTH = 2  # reports of wages and hours: in the wages row and in the hours row
ACKNOWLEDGED = WAGES_ONLY + BOTH  # every report: a count short of `cases` by 1-4 is "<5"
CLOSED = 2  # of the wages-only ones


@dataclass
class World:
    settings: Settings
    factory: str
    case_ids: list[str]
    cases: list[Document]  # as triage stored them, after the operator's moves
    month: str  # of receipt (every case's)
    week_start: datetime  # Monday 00:00 UTC of every case's ISO week
    manager: str  # a factory manager of `factory` (user name = password)

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def get(self, path: str, user: str | None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        headers.update(params.pop("headers", {}))
        url = f"{self.settings.triage_url}{path}"
        return httpx.get(url, params=params, headers=headers, timeout=60, verify=tls())

    def review(self, user: str = "operator", **params: Any) -> Document:
        answer = self.get("/api/stats", user, factory=self.factory, **params)
        assert answer.status_code == 200, answer.text
        found: Document = answer.json()
        return found


def submit(factory: str, *categories: str) -> str:
    flags = [part for category in categories for part in ("--category", category)]
    submitted = hotline_json("submit", "--factory", factory, *flags, "--text", "a report")
    case_id: str = submitted["case_id"]
    return case_id


def move(settings: Settings, case_id: str, status: str) -> None:
    token = password_token(settings, "operator", "operator")
    moved = httpx.post(
        f"{settings.triage_url}/api/cases/{case_id}/status",
        json={"status": status, "reason": "done"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        verify=tls(),
    )
    assert moved.status_code == 200, moved.text


def received_at(case: Document) -> datetime:
    return datetime.fromisoformat(case["received"])


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    admin.operator_key_file(tmp_path_factory.mktemp("keys"))
    factory = unique_factory_code()
    admin.created("factories", {"code": factory, "name": "Ibis Plastics", "country": "VN"})
    wages = [submit(factory, "wages") for _ in range(WAGES_ONLY)]
    both = [submit(factory, "wages", "hours") for _ in range(BOTH)]
    case_ids = [*wages, *both]
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        stored = Databases(client, settings.mongo_db).triage_cases
        wait_for(
            lambda: stored.count_documents({"_id": {"$in": case_ids}}) == len(case_ids) or None,
            timeout=WAIT,
            what="the cases at triage",
        )
        for case_id in case_ids[:ACKNOWLEDGED]:
            move(settings, case_id, "acknowledged")
        for case_id in wages[:CLOSED]:
            move(settings, case_id, "closed")
        cases = list(stored.find({"_id": {"$in": case_ids}}))
    months = {received_at(case).strftime("%Y-%m") for case in cases}
    weeks = {received_at(case).isocalendar()[:2] for case in cases}
    if len(months) > 1 or len(weeks) > 1:
        pytest.skip("the reports straddle a month or week boundary; run the module again")
    first = received_at(cases[0]).replace(hour=0)
    yield World(
        settings=settings,
        factory=factory,
        case_ids=case_ids,
        cases=cases,
        month=months.pop(),
        week_start=first - timedelta(days=first.weekday()),
        manager=add_user(settings, Role.FACTORY_MANAGER, factory),
    )


def hours(cases: list[Document], field: str) -> list[float]:
    """Hours from receipt to `field` of the cases that have it (the test's own sums)."""
    return [
        (datetime.fromisoformat(case[field]) - received_at(case)) / timedelta(hours=1)
        for case in cases
        if case.get(field)
    ]


def rows_by_category(found: Document) -> dict[str, Document]:
    rows: list[Document] = found["rows"]
    assert len({row["category"] for row in rows}) == len(rows), rows
    return {row["category"]: row for row in rows}


# --- the review's figures ----------------------------------------------------------------------


def test_a_cell_of_five_or_more_cases_shows_its_counts_and_times(world: World) -> None:
    rows = rows_by_category(world.review())
    assert set(rows) == {"wages", "hours"}
    wages = rows["wages"]
    assert (wages["factory"], wages["month"]) == (world.factory, world.month)
    assert wages["cases"] == WAGES_ONLY + BOTH  # the two-category reports count here too
    assert wages["acknowledged"] == ACKNOWLEDGED
    acknowledge = hours(world.cases, "acknowledged")
    assert len(acknowledge) == ACKNOWLEDGED
    assert wages["hours_to_acknowledge_median"] == round(statistics.median(acknowledge), 1)
    assert wages["hours_to_acknowledge_p90"] == round(
        statistics.quantiles(acknowledge, n=10, method="inclusive")[-1], 1
    )
    # Two closed cases: a count below five, and no time from two workers' cases.
    assert len(hours(world.cases, "closed")) == CLOSED
    assert wages["resolved_or_closed"] == "<5"
    assert wages["hours_to_resolve_median"] is None and wages["hours_to_resolve_p90"] is None


def test_a_cell_of_fewer_than_five_cases_shows_less_than_five_and_no_times(world: World) -> None:
    found = world.review()
    assert found["suppressed_below"] == 5
    hours_row = rows_by_category(found)["hours"]
    assert hours_row["cases"] == hours_row["acknowledged"] == "<5"
    assert hours_row["resolved_or_closed"] == "<5"
    assert all(hours_row[name] is None for name in MONTH_COLUMNS if name.startswith("hours_"))


def test_there_are_no_totals_and_nothing_per_case(world: World) -> None:
    found = world.review()
    assert {row["category"] for row in found["rows"]} == {"wages", "hours"}  # no "all" row
    text = str(found)
    assert not any(case_id in text for case_id in world.case_ids)
    assert set(found["rows"][0]) == set(MONTH_COLUMNS)


def test_month_filters_select_months_of_receipt(world: World) -> None:
    everything = world.review()["rows"]
    assert world.review(**{"from": world.month, "to": world.month})["rows"] == everything
    year, month = map(int, world.month.split("-"))
    later = f"{year + month // 12:04d}-{month % 12 + 1:02d}"
    earlier = f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"
    assert world.review(**{"from": later})["rows"] == []
    assert world.review(**{"to": earlier})["rows"] == []
    assert world.review(**{"from": earlier, "to": later})["rows"] == everything


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def as_csv_values(row: Document) -> dict[str, str]:
    return {name: "" if value is None else str(value) for name, value in row.items()}


def test_csv_has_a_header_and_the_same_suppressed_rows(world: World) -> None:
    expected = [as_csv_values(row) for row in world.review()["rows"]]
    for params in ({"format": "csv"}, {"headers": {"Accept": "text/csv"}}):
        answer = world.get("/api/stats", "operator", factory=world.factory, **params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        header, rows = csv_rows(answer.text)
        assert header == list(MONTH_COLUMNS)
        assert rows == expected
        assert any(row["cases"] == "<5" for row in rows)
    # An explicit format wins over the Accept header.
    csv_accepted = {"Accept": "text/csv"}
    answer = world.get(
        "/api/stats", "operator", factory=world.factory, format="json", headers=csv_accepted
    )
    assert answer.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-13"},
        {"from": "0000-01"},  # no year 0
        {"from": "2026-3"},
        {"to": "march"},
        {"to": "\u0662\u0660\u0662\u0666-03"},  # digits, but not ASCII ones
        {"from": "2026-05", "to": "2026-04"},
        {"factory": "not a code"},
        {"format": "xml"},
    ],
)
def test_bad_input_is_a_422(world: World, params: Document) -> None:
    answer = world.get("/api/stats", "operator", **params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_only_operators_and_compliance_officers_read_the_review(world: World) -> None:
    assert world.get("/api/stats", None).status_code == 401
    assert world.review("auditor")["rows"] == world.review("operator")["rows"]
    for refused_user in ("buyer1", "admin", world.manager):
        refused = world.get("/api/stats", refused_user, factory=world.factory)
        assert refused.status_code == 403, (refused_user, refused.text)
        assert world.factory not in refused.text


# --- the factory's own view --------------------------------------------------------------------


def test_this_weeks_reports_are_held_back_from_the_factory(world: World) -> None:
    answer = world.get("/api/stats/factory", world.manager)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["factory"] == world.factory
    this_week = "{:04d}-W{:02d}".format(*world.week_start.isocalendar()[:2])
    assert found["through_week"] < this_week
    assert found["weeks"] == []  # the factory's only reports are this week's
    own = world.get("/api/stats/factory", world.manager, factory=world.factory)
    assert own.status_code == 200 and own.json() == found


def test_the_factory_view_is_the_managers_own_factory_only(world: World) -> None:
    assert world.get("/api/stats/factory", None).status_code == 401
    other = world.get("/api/stats/factory", world.manager, factory=unique_factory_code())
    assert other.status_code == 403, other.text
    manager_of_another = add_user(world.settings, Role.FACTORY_MANAGER, unique_factory_code())
    for refused_user in ("operator", "auditor", "buyer1", "admin"):
        refused = world.get("/api/stats/factory", refused_user, factory=world.factory)
        assert refused.status_code == 403, (refused_user, refused.text)
    elsewhere = world.get("/api/stats/factory", manager_of_another, factory=world.factory)
    assert elsewhere.status_code == 403, elsewhere.text
    no_factory = add_user(world.settings, Role.FACTORY_MANAGER)
    assert world.get("/api/stats/factory", no_factory).status_code == 403


@dataclass
class InProcess:
    client: httpx.AsyncClient
    clock: ManualClock


@pytest.fixture
async def triage_stats(world: World) -> AsyncIterator[InProcess]:
    """The statistics routes in-process over the session's store and Keycloak, with a
    manual clock at the real now (it only reads: nothing is started but the store)."""
    settings = world.settings
    store = Store(settings)
    producer = make_producer(settings)  # never started: statistics publish nothing
    app = FastAPI()
    app.include_router(stats)
    app.state.runtime = Runtime(settings, store, producer, relay_for(store, producer))
    clock = ManualClock(datetime.now(UTC))
    app.state.clock = clock
    verifier = TokenVerifier(settings, "hotline-triage")
    install_token_verifier(app, verifier)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://triage") as client:
            yield InProcess(client, clock)
    finally:
        await verifier.aclose()
        await store.close()


async def test_a_week_is_shown_to_its_factory_seven_days_after_it_ended(
    world: World, triage_stats: InProcess
) -> None:
    headers = {"Authorization": f"Bearer {world.token(world.manager)}"}
    week = "{:04d}-W{:02d}".format(*world.week_start.isocalendar()[:2])
    shown_from = world.week_start + timedelta(days=7) + timedelta(days=7)
    clock = triage_stats.clock

    async def weeks() -> list[Document]:
        answer = await triage_stats.client.get("/api/stats/factory", headers=headers)
        assert answer.status_code == 200, answer.text
        found: list[Document] = answer.json()["weeks"]
        return found

    assert await weeks() == []
    clock.advance(shown_from - timedelta(hours=1) - clock.now())
    assert await weeks() == []  # the week ended 7 days ago less an hour
    clock.advance(timedelta(hours=1))
    assert await weeks() == [
        {"week": week, "category": "hours", "cases": "<5"},
        {"week": week, "category": "wages", "cases": WAGES_ONLY + BOTH},
    ]
    csv_answer = await triage_stats.client.get(
        "/api/stats/factory", headers=headers, params={"format": "csv"}
    )
    header, rows = csv_rows(csv_answer.text)
    assert header == ["week", "category", "cases"]
    assert rows == [as_csv_values(row) for row in await weeks()]


def per_case_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of `app` about cases: the queue, and any path with a
    case id."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path == "/api/cases" or "{case_id}" in path
        for method in operations
    ]


def test_a_factory_manager_is_refused_by_every_per_case_route(world: World) -> None:
    """Triage's case, workflow and message routes, intake's attachments and notify's buyer
    routes about a case: each answers 403 to a factory manager, about its own factory's case."""
    token = world.token(world.manager)
    case_id = world.case_ids[0]
    checked = []
    for base, app in (
        (world.settings.triage_url, create_triage()),
        (world.settings.intake_url, create_intake()),
        (world.settings.notify_url, create_notify()),
    ):
        for method, path in per_case_routes(app):
            url = base + path.replace("{case_id}", case_id)
            answer = httpx.request(
                method,
                url,
                headers={"Authorization": f"Bearer {token}"},
                json={},
                timeout=60,
                verify=tls(),
            )
            assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
            checked.append(path)
    assert "/api/cases/{case_id}" in checked and "/api/cases/{case_id}/messages" in checked


# --- the CLI -----------------------------------------------------------------------------------


def test_hotline_stats_prints_a_table_csv_and_json(world: World) -> None:
    operator = world.token("operator")
    table = hotline("stats", "--factory", world.factory, token=operator).stdout.splitlines()
    assert table[0].split()[:4] == ["factory", "category", "month", "cases"]
    by_category = {line.split()[1]: line.split() for line in table[1:]}
    assert set(by_category) == {"wages", "hours"}
    assert by_category["wages"][:6] == [
        world.factory,
        "wages",
        world.month,
        str(WAGES_ONLY + BOTH),
        str(ACKNOWLEDGED),
        "<5",
    ]
    assert by_category["hours"][3:] == ["<5", "<5", "<5", "-", "-", "-", "-"]

    printed = hotline("stats", "--factory", world.factory, "--csv", token=operator).stdout
    served = world.get("/api/stats", "operator", factory=world.factory, format="csv").text
    assert csv_rows(printed) == csv_rows(served)

    month = ("--from", world.month, "--to", world.month)
    as_json = hotline_json("stats", "--factory", world.factory, *month, token=operator)
    assert as_json["rows"] == world.review()["rows"]
    assert as_json["first_month"] == as_json["last_month"] == world.month


def test_hotline_stats_says_what_is_wrong(world: World) -> None:
    no_login = hotline("stats", check=False)
    assert no_login.returncode != 0 and "not logged in" in no_login.stderr
    buyer = hotline("stats", token=world.token("buyer1"), check=False)
    assert buyer.returncode != 0
    assert "403" in buyer.stderr and "compliance-officer" in buyer.stderr
    bad = hotline("stats", "--from", "2026-13", token=world.token("auditor"), check=False)
    assert bad.returncode != 0 and "YYYY-MM" in bad.stderr


# --- the figures' arithmetic (pure) ------------------------------------------------------------


def test_median_and_90th_percentile_of_hours() -> None:
    received = datetime(2026, 3, 2, 9, tzinfo=UTC)
    cases = [
        CaseTimes(
            factory="F-001",
            categories=("wages",),
            received=received,
            acknowledged=received + timedelta(hours=hours),
            closed=received + timedelta(hours=10 * hours) if hours <= 4 else None,
            final=hours <= 4,
        )
        for hours in range(1, 11)  # acknowledged after 1, 2, ..., 10 hours
    ]
    [row] = monthly_rows(cases)
    # 1..10: the median halfway between 5 and 6; the 90th percentile at 9 + 0.1 (9 to 10).
    assert (row.hours_to_acknowledge_median, row.hours_to_acknowledge_p90) == (5.5, 9.1)
    assert (row.cases, row.acknowledged, row.resolved_or_closed) == (10, 10, "<5")
    assert row.hours_to_resolve_median is None  # four closed cases give no time
    assert monthly_rows(cases, first="2026-04") == []


@pytest.mark.parametrize(
    ("cases", "acknowledged", "shown"),
    [
        (6, 5, "<5"),  # 5 is not small, but it says that one worker's case was not acknowledged
        (9, 5, "<5"),  # four left out
        (10, 5, 5),  # five left out: as many as a shown count needs
        (6, 6, 6),  # none left out
        (6, 0, 0),  # zero reveals nobody's report
        (6, 2, "<5"),  # small itself
    ],
)
def test_a_count_a_few_short_of_its_cases_is_suppressed(
    cases: int, acknowledged: int, shown: int | str
) -> None:
    received = datetime(2026, 3, 2, 9, tzinfo=UTC)
    times = [
        CaseTimes(
            factory="F-001",
            categories=("wages",),
            received=received,
            acknowledged=received + timedelta(hours=1) if index < acknowledged else None,
            closed=None,
            final=False,
        )
        for index in range(cases)
    ]
    [row] = monthly_rows(times)
    assert (row.cases, row.acknowledged, row.resolved_or_closed) == (cases, shown, 0)
