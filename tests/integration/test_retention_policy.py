"""Retention policies and the scheduler's robustness (issue 18, review) against the running
system: a policy's days are whole numbers (not `true`, not "3"); `hotline admin retention`
sends ORG as one path segment; a changed policy reaches closed cases through the
scheduler's round (the admin's request only stores it), shortening what they wait for; the
content's deletion also clears the operators' reasons in the case's history; and a case the
round cannot handle is put off without stopping the deletion of the others.

Cases are real reports (`hotline submit`) closed through the operator's status API. Rounds
run in this process with their own `now` past the deadlines (`retention.retention_round`,
as tests/integration/test_retention.py runs them), on the running system's store; the
running triage's own scheduler reads the machine's time and writes the same guarded
decisions, so each assertion holds whichever scheduler got there first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.bus import make_producer
from hotline.shared.clock import iso_z, parse_iso
from hotline.shared.config import Settings
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Databases, Store
from hotline.triage.collections import COLLECTIONS
from hotline.triage.retention import RETRY_AFTER, retention_round
from tests.support.cli import hotline, hotline_json
from tests.support.registry import AdminApi, unique_factory_code
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

Document = dict[str, Any]
WAIT = 60.0
REASON = "the supervisor on line 4 apologised to the workers"  # an operator's own words


@dataclass
class World:
    settings: Settings
    mongo: Databases[Collection[Document]]
    admin: AdminApi

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def call(self, method: str, path: str, user: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        url = f"{self.settings.triage_url}{path}"
        return httpx.request(method, url, json=body, headers=headers, timeout=60, verify=tls())

    def policy(self, method: str, org: str, body: Any = None) -> httpx.Response:
        return self.call(method, f"/api/admin/retention/{org}", "admin", body)

    def new_factory(self, identity_days: int, content_days: int) -> str:
        """A factory of its own, with this policy."""
        factory = unique_factory_code()
        self.admin.created("factories", {"code": factory, "name": "Heron Toys", "country": "VN"})
        days = {"identity_days": identity_days, "content_days": content_days}
        assert self.policy("PUT", factory, days).status_code == 200
        return factory

    def case(self, case_id: str) -> Document:
        found = self.mongo.triage_cases.find_one({"_id": case_id})
        assert found is not None
        return found

    def closed_case(self, factory: str) -> tuple[str, datetime]:
        """A real report, closed with a reason: (case id, closure hour)."""
        submitted = hotline_json(
            "submit", "--factory", factory, "--category", "wages", "--text", "x"
        )
        case_id: str = submitted["case_id"]
        wait_for(lambda: self.mongo.triage_cases.find_one({"_id": case_id}), WAIT, "the case")
        closing = {"status": "closed", "reason": REASON}
        closed = self.call("POST", f"/api/cases/{case_id}/status", "operator", closing)
        assert closed.status_code == 200, closed.text
        return case_id, parse_iso(self.case(case_id)["closed"])

    def reasons(self, case_id: str) -> list[str | None]:
        """The reasons of the case's history, as the operator reads it."""
        history = self.call("GET", f"/api/cases/{case_id}/history", "operator")
        assert history.status_code == 200, history.text
        return [entry["reason"] for entry in history.json()["entries"]]


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    admin.operator_key_file(tmp_path_factory.mktemp("keys"))
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(settings, Databases(client, settings.mongo_db), admin)


async def _round(settings: Settings, now: datetime) -> int:
    """One retention round at `now` in this process over the running system's store, its
    events published before it returns."""
    store = Store(settings, COLLECTIONS)
    producer = make_producer(settings)
    await producer.start()
    try:
        runtime = Runtime(settings, store, producer, relay_for(store, producer))
        written = await retention_round(runtime, now)
        await runtime.relay.flush()
        return written
    finally:
        await producer.stop()
        await store.close()


def run_round(settings: Settings, now: datetime) -> int:
    return asyncio.run(_round(settings, now))


# --- the policy ------------------------------------------------------------------------------


def test_days_are_whole_numbers_not_booleans_or_text(world: World) -> None:
    factory = world.new_factory(4, 40)
    for bad in (
        {"identity_days": True, "content_days": 30},
        {"identity_days": 1, "content_days": "30"},
        {"identity_days": 1.5, "content_days": 30},
    ):
        refused = world.policy("PUT", factory, bad)
        assert refused.status_code == 422, (bad, refused.text)
    kept = world.policy("GET", factory).json()
    assert (kept["identity_days"], kept["content_days"]) == (4, 40), "nothing changed"


def test_the_cli_sends_org_as_one_path_segment(world: World) -> None:
    """Unquoted, `F-...#x` would lose "#x" as a fragment (and `?x` become a query) and show
    F-...'s policy; quoted, the service is asked about "F-...#x", which is no org."""
    factory = world.new_factory(6, 60)
    token = world.token("admin")
    for suffix in ("#x", "?x"):
        shown = hotline("admin", "retention", "show", factory + suffix, token=token, check=False)
        assert shown.returncode != 0, shown.stdout
        assert "422" in shown.stderr and "org must be" in shown.stderr
        assert "6 days" not in shown.stdout
    assert (
        "6 days after closure" in hotline("admin", "retention", "show", factory, token=token).stdout
    )


# --- a changed policy, and the deletion of reasons ---------------------------------------------


@dataclass
class Shortened:
    """A case closed under a long policy, scheduled, then its factory's policy shortened."""

    factory: str
    case_id: str
    scheduled: str  # its retention_next under the long policy
    reasons_before: list[str | None]
    policy_after: Document  # the stored policy after the round that applied it


@pytest.fixture(scope="module")
def shortened(world: World) -> Shortened:
    factory = world.new_factory(10, 20)
    case_id, closed = world.closed_case(factory)
    run_round(world.settings, closed + timedelta(hours=1))  # nothing due: when to look
    scheduled = world.case(case_id)["retention_next"]
    reasons_before = world.reasons(case_id)

    changed = world.policy("PUT", factory, {"identity_days": 1, "content_days": 2})
    assert changed.status_code == 200, changed.text
    stored = world.mongo.retention_policies.find_one({"_id": factory})
    assert stored is not None
    changed_at = parse_iso(stored["changed"])
    assert (changed_at.minute, changed_at.second) == (0, 0), "an hour, as every stored time"
    # Two days after closure: due under the new policy, ten days early under the old one.
    run_round(world.settings, closed + timedelta(days=2, hours=1))
    policy_after = world.mongo.retention_policies.find_one({"_id": factory})
    assert policy_after is not None
    return Shortened(factory, case_id, scheduled, reasons_before, policy_after)


def test_a_shorter_policy_reaches_closed_cases_through_the_round(
    world: World, shortened: Shortened
) -> None:
    closed = parse_iso(world.case(shortened.case_id)["closed"])
    assert shortened.scheduled == "retention:" + iso_z(closed + timedelta(days=10))
    case = world.case(shortened.case_id)
    assert (case["content"], case["identity"], case["retention_next"]) == (None, None, None)
    assert set(case["deleted"]) == {"identity", "content"}
    policy = shortened.policy_after
    assert policy["applied_revision"] == policy["revision"] == 2, "applied after its pass"


def test_a_policy_changed_again_is_applied_again(world: World, shortened: Shortened) -> None:
    changed = world.policy("PUT", shortened.factory, {"identity_days": 3, "content_days": 5})
    assert changed.status_code == 200, changed.text
    stored = world.mongo.retention_policies.find_one({"_id": shortened.factory})
    assert stored is not None and stored["revision"] == 3
    closed = parse_iso(world.case(shortened.case_id)["closed"])
    run_round(world.settings, closed + timedelta(days=2, hours=2))
    stored = world.mongo.retention_policies.find_one({"_id": shortened.factory})
    assert stored is not None and stored["applied_revision"] == 3
    assert world.policy("GET", shortened.factory).json()["content_days"] == 5


def test_the_contents_deletion_clears_the_operators_reasons(
    world: World, shortened: Shortened
) -> None:
    assert shortened.reasons_before[-1] == REASON, "the closing reason, before the deletion"
    history = world.call("GET", f"/api/cases/{shortened.case_id}/history", "operator")
    entries = history.json()["entries"]
    assert [entry["reason"] for entry in entries] == [None] * len(entries)
    assert entries[-1]["status"] == "closed", "who did what and when stays"
    assert REASON not in str(world.case(shortened.case_id))


# --- one bad case ------------------------------------------------------------------------------


def test_a_case_the_round_cannot_handle_does_not_stop_the_others(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A case document whose closure time is not a time, due before every other case:
    the round logs its error's type, puts it off, and deletes the real case after it."""
    factory = world.new_factory(1, 2)
    case_id, closed = world.closed_case(factory)
    # The new policy's pass done first: it would set the broken case's key from its closure.
    run_round(world.settings, closed + timedelta(hours=1))
    broken_id = str(uuid.uuid4())
    real = world.case(case_id)
    broken = {  # routing metadata only (statistics read every case), and no envelope
        **{name: real[name] for name in ("factory", "categories", "received", "status")},
        "_id": broken_id,
        "version": 1,
        "outbox": {},
        "outbox_pending": 0,
        "closed": "not a time",
        "retention_next": "retention:2000-01-01T00:00:00Z",  # first in the round's read
    }
    world.mongo.triage_cases.insert_one(broken)
    try:
        now = closed + timedelta(days=2, hours=1)
        with caplog.at_level(logging.WARNING, logger="hotline.triage.retention"):
            run_round(world.settings, now)
        case = world.case(case_id)
        assert (case["content"], case["identity"]) == (None, None), "the real case went"
        put_off = world.case(broken_id)["retention_next"]
        assert put_off == "retention:" + iso_z(now + RETRY_AFTER), "tried again later"
        [warning] = [r for r in caplog.records if r.name == "hotline.triage.retention"]
        assert getattr(warning, "error_type", None) == "ValueError"
        assert broken_id not in warning.getMessage() and "not a time" not in warning.getMessage()

        run_round(world.settings, now + timedelta(minutes=1))  # the next round: not again
        assert world.case(broken_id)["retention_next"] == put_off
    finally:
        world.mongo.triage_cases.delete_one({"_id": broken_id})
