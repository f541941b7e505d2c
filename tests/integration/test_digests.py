"""Buyers' signed digests (issue 19): the format and its checks, issuance on the real store
(numbering under racing writers, crash repair, the urgent trigger, the schedule on an
injected clock), then the running system over real HTTP with real Keycloak tokens: cursor
pulls, disclosures once per digest, buyer isolation, the `hotline digests` commands
(pull, verify with a tampered, dropped, reordered or rewritten digest, open, export, ack).

The first part calls notify's issuer and consumer handlers as the service does, on a
database of its own per test (tests/support/digests.py); the second uses the session's
services, with a factory and buyers of this module's own.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.notify.consumer import add_all_to_digests, add_to_digests, apply_case_event
from hotline.notify.digest import (
    MAX_ITEMS,
    DigestError,
    chain_problems,
    check_digest_file,
    digest_body,
    digest_hash,
    digest_items,
    sign_digest,
)
from hotline.notify.digests import digest_file
from hotline.shared import registry
from hotline.shared.config import Settings
from hotline.shared.events import EventType, parse_event, topic_for
from hotline.shared.keys import load_or_create_signing_key
from hotline.shared.roles import Role
from hotline.shared.store import Databases, Document
from hotline.shared.tlog.note import Ed25519Signer
from tests.support.cli import hotline, hotline_json
from tests.support.digests import (
    NotifyStore,
    all_digests,
    digest_page,
    escalated_event,
    notify_store,
    report_event,
    status_event,
    triaged_event,
)
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import async_wait_for, wait_for

WAIT = 60.0
DISCLOSURES = topic_for(EventType.ENVELOPE_DISCLOSED)


# --- the format (pure) ------------------------------------------------------------------------


def record(n: int, case_id: str, change: str, **fields: Any) -> Document:
    return {
        "n": n,
        "case_id": case_id,
        "change": change,
        "factory": "F-100",
        "categories": ["wages"],
        "urgent": False,
        "language": "zh",
        "received": "2026-03-04T10:00:00Z",
        "content": {"sealed": case_id} if change == "new" else None,
        "attachments": [],
        **fields,
    }


def test_a_digest_lists_each_case_once_new_before_changed_with_its_state_at_issue() -> None:
    records = [
        record(1, "case-a", "changed"),
        record(2, "case-b", "new"),
        record(3, "case-a", "new"),
        record(4, "case-b", "changed"),
    ]
    cases = {"case-a": {"severity": "critical", "status": "acknowledged", "due": "2026-03-04Z"}}
    items = digest_items(records, cases)
    assert [(i["case_id"], i["change"]) for i in items] == [("case-a", "new"), ("case-b", "new")]
    a, b = items
    assert (a["severity"], a["status"], a["due"]) == ("critical", "acknowledged", "2026-03-04Z")
    assert (b["severity"], b["status"], b["due"]) == (None, "received", None)
    assert a["content"] == {"sealed": "case-a"}
    [changed] = digest_items([record(5, "case-b", "changed")], {})
    assert (changed["change"], changed["content"], changed["attachments"]) == ("changed", None, [])


def signed_chain(signer: Ed25519Signer, length: int) -> list[dict[str, Any]]:
    """`length` digest files of one buyer, chained, one item each."""
    files, previous = [], None
    for seq in range(1, length + 1):
        items = digest_items([record(seq, f"case-{seq}", "new")], {})
        body = digest_body("buyer-x", seq, previous, "2026-03-04T10:00:00Z", "schedule", items)
        previous, note = sign_digest(signer, body)
        files.append({"digest": body, "note": note})
    return files


def test_a_signed_digest_checks_and_each_change_to_it_is_named() -> None:
    signer = Ed25519Signer.generate("test.invalid/digests")
    key = signer.verifier()
    files = signed_chain(signer, 4)
    checked = [check_digest_file(f, key) for f in files]
    assert chain_problems(checked) == []
    assert checked[1].hash == digest_hash(files[1]["digest"]) == files[2]["digest"]["previous"]

    tampered = json.loads(json.dumps(files[1]))
    tampered["digest"]["items"][0]["status"] = "closed"
    with pytest.raises(DigestError, match="the signature is over another digest"):
        check_digest_file(tampered, key)
    other_key = Ed25519Signer.generate("test.invalid/digests").verifier()
    with pytest.raises(DigestError, match="does not verify"):
        check_digest_file(files[1], other_key)
    with pytest.raises(DigestError, match="not a digest body: digest.seq"):
        check_digest_file({**files[1], "digest": {**files[1]["digest"], "seq": "2"}}, key)

    dropped = [checked[0], checked[2], checked[3]]
    assert chain_problems(dropped) == ["digest 2 missing (between 1 and 3)"]
    # Digests 2 and 3 swapped and each signed again under the other's seq: the chain breaks.
    swapped = []
    for body, seq in ((files[2]["digest"], 2), (files[1]["digest"], 3)):
        moved = {**body, "seq": seq}
        note = sign_digest(signer, moved)[1]
        swapped.append(check_digest_file({"digest": moved, "note": note}, key))
    problems = chain_problems([checked[0], *swapped, checked[3]])
    assert any("digest 2 does not chain to digest 1" in p for p in problems), problems
    forked = {**files[1]["digest"], "issued": "2026-03-05T00:00:00Z"}
    fork = check_digest_file({"digest": forked, "note": sign_digest(signer, forked)[1]}, key)
    assert chain_problems([*checked, fork]) == ["two different digests 2 (a fork)"]


# --- issuance on the real store -------------------------------------------------------------


@pytest.fixture
async def notify(test_settings: Settings, local_system: Any) -> AsyncIterator[NotifyStore]:
    async with notify_store(test_settings) as setting:
        yield setting


async def one_buyer(notify: NotifyStore, buyer: str = "acme") -> tuple[str, dict[str, Party]]:
    """A factory with one linked buyer; the factory code and who reports are sealed to."""
    factory = unique_factory_code()
    await registry.add_factory(notify.registry, factory, "Heron Toys", "CN")
    party = await notify.buyer(buyer, factory)
    return factory, {"operator": Party.new(), buyer: party}


async def stored(notify: NotifyStore, buyer: str) -> list[dict[str, Any]]:
    """The buyer's digest files, by seq, as a pull hands them out."""
    found = notify.digests.find({"buyer": buyer}).sort("seq", 1)
    return [digest_file(doc) async for doc in found]


async def test_racing_issuers_give_each_record_one_number_and_each_seq_one_digest(
    notify: NotifyStore,
) -> None:
    """Two notify processes (two connections) record reports and issue digests for the same
    buyer at once: n and seq each come out 1, 2, 3... with no gap and no repeat, every
    report is in exactly one digest, and the digests chain."""
    factory, sealed_to = await one_buyer(notify)
    issuers = [notify.issuer, notify.another_process()]
    reports = [report_event(factory, sealed_to) for _ in range(24)]

    async def record_then_issue(number: int) -> None:
        issuer = issuers[number % 2]
        await add_to_digests(issuer, reports[number])
        await issuer.issue("acme", "on-request")

    await asyncio.gather(*(record_then_issue(n) for n in range(len(reports))))
    for issuer in issuers:
        await issuer.issue_pending("acme", "on-request")

    numbers = sorted([doc["n"] async for doc in notify.items.find({"buyer": "acme"})])
    assert numbers == list(range(1, len(reports) + 1))
    files = await stored(notify, "acme")
    assert [f["digest"]["seq"] for f in files] == list(range(1, len(files) + 1))
    listed = [item["case_id"] for f in files for item in f["digest"]["items"]]
    assert sorted(listed) == sorted(r.subject for r in reports), "each report exactly once"
    checked = [check_digest_file(f, notify.signer.verifier()) for f in files]
    assert chain_problems(checked) == []
    state = await notify.issuer.store.db.notify_buyer_state.find_one({"_id": "acme"})
    assert state is not None
    assert (state["seq"], state["upto"], state["last_hash"]) == (
        len(files),
        len(reports),
        checked[-1].hash,
    )
    events = [doc async for doc in notify.digests.find({"buyer": "acme"})]
    for doc in events:
        [issued] = doc["outbox"].values()
        assert issued["type"] == "digest.issued" and issued["subject"] == doc["_id"]
        assert issued["data"]["digest_hash"] == doc["digest_hash"]


async def test_issuing_what_is_pending_gives_full_digests_then_the_rest(
    notify: NotifyStore,
) -> None:
    """More records pending than a digest holds: a digest of MAX_ITEMS, one of the rest, and
    then nothing is pending."""
    factory, sealed_to = await one_buyer(notify)
    reports = [report_event(factory, sealed_to) for _ in range(MAX_ITEMS + 3)]
    await add_all_to_digests(notify.issuer, reports)
    issued = await notify.issuer.issue_pending("acme", "on-request")
    assert [len(json.loads(digest["body"])["items"]) for digest in issued] == [MAX_ITEMS, 3]
    assert await notify.issuer.issue_pending("acme", "on-request") == []
    files = await stored(notify, "acme")
    listed = [item["case_id"] for f in files for item in f["digest"]["items"]]
    assert sorted(listed) == sorted(r.subject for r in reports), "each report exactly once"


async def two_digests_and_the_state_left_behind(
    notify: NotifyStore,
) -> tuple[str, dict[str, Party]]:
    """Digests 1 and 2 issued, then the state put back to after 1: a crash between writing
    digest 2 and advancing the state. The buyer's factory and parties."""
    factory, sealed_to = await one_buyer(notify)
    states = notify.issuer.store.db.notify_buyer_state
    for _ in range(2):
        await add_to_digests(notify.issuer, report_event(factory, sealed_to))
        before = await states.find_one({"_id": "acme"})
        assert await notify.issuer.issue("acme", "on-request") is not None
    assert before is not None
    await states.replace_one({"_id": "acme"}, before)  # as if the state was never advanced
    return factory, sealed_to


async def test_a_digest_written_without_its_state_is_repaired_by_the_next_issuance(
    notify: NotifyStore,
) -> None:
    """A crash between writing digest 2 and advancing the state: the next issuance reads the
    highest digest first, so it issues 3 after 2, chained to it, with only what is new."""
    factory, sealed_to = await two_digests_and_the_state_left_behind(notify)
    late = report_event(factory, sealed_to)
    await add_to_digests(notify.issuer, late)

    third = await notify.issuer.issue("acme", "on-request")

    assert third is not None and third["seq"] == 3
    files = await stored(notify, "acme")
    assert [f["digest"]["seq"] for f in files] == [1, 2, 3]
    assert [i["case_id"] for i in files[2]["digest"]["items"]] == [late.subject]
    checked = [check_digest_file(f, notify.signer.verifier()) for f in files]
    assert chain_problems(checked) == []


async def test_an_urgent_digest_after_a_state_left_behind_is_the_next_seq_and_chained(
    notify: NotifyStore,
) -> None:
    """The urgent trigger drafts from the state it has just read: if a crash left that
    state a digest behind, the draft's seq is taken, and the retry repairs the state first."""
    factory, sealed_to = await two_digests_and_the_state_left_behind(notify)
    critical = report_event(factory, sealed_to, categories=["safety"])
    await add_to_digests(notify.issuer, critical)

    await apply_case_event(notify.issuer, triaged_event(critical, "critical"))

    files = await stored(notify, "acme")
    assert [(f["digest"]["seq"], f["digest"]["reason"]) for f in files] == [
        (1, "on-request"),
        (2, "on-request"),
        (3, "urgent"),
    ]
    assert [i["case_id"] for i in files[2]["digest"]["items"]] == [critical.subject]
    checked = [check_digest_file(f, notify.signer.verifier()) for f in files]
    assert chain_problems(checked) == []


async def test_a_critical_case_is_issued_urgently_whichever_of_report_and_severity_is_second(
    notify: NotifyStore,
) -> None:
    factory, sealed_to = await one_buyer(notify)
    report_first = report_event(factory, sealed_to, categories=["safety"])
    await add_to_digests(notify.issuer, report_first)
    assert await stored(notify, "acme") == [], "severity unknown yet: nothing urgent"
    await apply_case_event(notify.issuer, triaged_event(report_first, "critical"))
    [urgent] = await stored(notify, "acme")
    assert urgent["digest"]["reason"] == "urgent"
    [item] = urgent["digest"]["items"]
    assert (item["case_id"], item["change"], item["severity"]) == (
        report_first.subject,
        "new",
        "critical",
    )
    await apply_case_event(notify.issuer, escalated_event(report_first))
    assert len(await stored(notify, "acme")) == 1, "the escalation of a case sent: no digest"

    severity_first = report_event(factory, sealed_to, urgent=True)
    await apply_case_event(notify.issuer, escalated_event(severity_first))
    assert len(await stored(notify, "acme")) == 1, "no report yet: nothing to send"
    await add_to_digests(notify.issuer, severity_first)
    files = await stored(notify, "acme")
    assert [f["digest"]["reason"] for f in files] == ["urgent", "urgent"]
    assert [i["case_id"] for i in files[1]["digest"]["items"]] == [severity_first.subject]

    normal = report_event(factory, sealed_to)
    await add_to_digests(notify.issuer, normal)
    await apply_case_event(notify.issuer, triaged_event(normal, "high"))
    assert len(await stored(notify, "acme")) == 2, "a case that is not critical waits"


async def test_a_change_of_a_sent_case_is_a_changed_item_of_the_next_digest(
    notify: NotifyStore,
) -> None:
    factory, sealed_to = await one_buyer(notify)
    report = report_event(factory, sealed_to)
    await add_to_digests(notify.issuer, report)
    await apply_case_event(notify.issuer, triaged_event(report, "high"))
    first = await notify.issuer.issue("acme", "on-request")
    assert first is not None
    acknowledged = status_event(report, "acknowledged")
    await apply_case_event(notify.issuer, acknowledged)
    await apply_case_event(notify.issuer, parse_event(acknowledged.to_bytes()))  # redelivered
    second = await notify.issuer.issue("acme", "on-request")
    assert second is not None and await notify.issuer.issue("acme", "on-request") is None
    [item] = digest_file(second)["digest"]["items"]
    assert (item["change"], item["status"], item["severity"]) == ("changed", "acknowledged", "high")
    assert item["content"] is None and item["attachments"] == []
    assert item["factory"] == factory and item["case_id"] == report.subject


async def test_the_scheduled_digest_appears_when_the_clock_passes_the_buyers_schedule(
    notify: NotifyStore,
) -> None:
    """Daily at 00:00 UTC by default, Mondays for a weekly buyer; nothing when nothing is
    pending. The clock is injected: the test moves it, the scheduler task notices."""
    factory, sealed_to = await one_buyer(notify, "daily-brand")
    weekly = await notify.buyer("weekly-brand", factory)
    await registry.set_schedule(notify.registry, "weekly-brand", "weekly")
    sealed_to["weekly-brand"] = weekly
    await add_to_digests(notify.issuer, report_event(factory, sealed_to))
    assert await notify.issuer.run_schedules() == [], "Wednesday 10:30: nothing is due"

    scheduler = asyncio.create_task(notify.issuer.scheduler())
    try:
        notify.clock.advance(timedelta(hours=14))  # Thursday 00:30

        async def daily_digest() -> list[dict[str, Any]]:
            return await stored(notify, "daily-brand")

        [daily] = await async_wait_for(daily_digest, what="the daily digest")
    finally:
        scheduler.cancel()
    assert (daily["digest"]["reason"], daily["digest"]["issued"]) == (
        "schedule",
        "2026-03-05T00:00:00Z",
    )
    assert await stored(notify, "weekly-brand") == [], "weekly: not before Monday"

    notify.clock.advance(timedelta(days=1))  # Friday: nothing new for the daily buyer
    assert [d["buyer"] for d in await notify.issuer.run_schedules()] == []
    notify.clock.advance(timedelta(days=3))  # Monday 2026-03-09 00:30
    [weekly_digest] = await notify.issuer.run_schedules()
    assert (weekly_digest["buyer"], weekly_digest["reason"]) == ("weekly-brand", "schedule")
    assert len(await stored(notify, "daily-brand")) == 1


async def test_the_schedule_pass_sends_a_critical_case_whose_trigger_did_not_fire(
    notify: NotifyStore,
) -> None:
    factory, sealed_to = await one_buyer(notify)
    report = report_event(factory, sealed_to)
    await add_to_digests(notify.issuer, report)
    # The severity recorded while the urgent trigger failed (the store went away, say).
    await notify.issuer.set_case_state(report.subject, {"severity": "critical"})
    [digest] = await notify.issuer.run_schedules()
    assert (digest["reason"], digest["cases"]) == ("urgent", [report.subject])


# --- the running system -----------------------------------------------------------------------


@dataclass
class World:
    """A factory with a linked buyer (a user of its own org, a key file), and a buyer of
    another factory."""

    settings: Settings
    mongo: Databases[Collection[Document]]
    factory: str
    org: str
    buyer: str  # user names (= passwords)
    key_file: Path
    other_org: str
    other_buyer: str
    other_key_file: Path

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def notify(self, method: str, path: str, user: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.request(
            method, f"{self.settings.notify_url}{path}", headers=headers, timeout=60, **kwargs
        )

    def digests(self, since: int = 0, user: str | None = None) -> list[dict[str, Any]]:
        return all_digests(self.settings, self.token(user or self.buyer), since)

    def last_seq(self) -> int:
        files = self.digests()
        return int(files[-1]["digest"]["seq"]) if files else 0


def key_pair(folder: Path, name: str) -> tuple[Path, str]:
    """A key file made as a buyer makes it, and its public key as registered."""
    key_file = folder / f"{name}.key"
    hotline("keys", "generate", "--out", str(key_file))
    return key_file, (folder / f"{name}.key.pub").read_text().splitlines()[1]


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    keys = tmp_path_factory.mktemp("keys")
    _, operator_public = key_pair(keys, "operator")
    admin.created("operator-keys", {"public_key": operator_public})
    factory, other_factory = unique_factory_code(), unique_factory_code()
    for code in (factory, other_factory):
        admin.created("factories", {"code": code, "name": "Kestrel Toys", "country": "CN"})
    orgs, files = {}, {}
    for name, at in (("buyer", factory), ("other", other_factory)):
        org = unique_buyer_id()
        files[name], public = key_pair(keys, name)
        admin.created("buyers", {"buyer_id": org, "name": org.title(), "public_key": public})
        admin.created("links", {"buyer_id": org, "factory": at})
        orgs[name] = org
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(
            settings=settings,
            mongo=Databases(client, settings.mongo_db),
            factory=factory,
            org=orgs["buyer"],
            buyer=add_user(settings, Role.BUYER, orgs["buyer"]),
            key_file=files["buyer"],
            other_org=orgs["other"],
            other_buyer=add_user(settings, Role.BUYER, orgs["other"]),
            other_key_file=files["other"],
        )


def submit(world: World, text: str, *, urgent: bool = False) -> str:
    """A report by the CLI, with an identity; returns its case id once notify holds the
    buyer's record and the case's severity."""
    flags = ["--urgent"] if urgent else []
    case_id: str = hotline_json(
        "submit", "--factory", world.factory, "--category", "wages", "--text", text,
        "--identity", f"Wang, dormitory 3 {text}", *flags,
    )["case_id"]  # fmt: skip
    wait_for(
        lambda: (
            world.mongo.notify_items.find_one({"_id": f"{world.org}:{case_id}"})
            and world.mongo.notify_cases.find_one({"_id": case_id, "severity": {"$exists": True}})
        ),
        timeout=WAIT,
        what="the buyer's record of the case and its severity at notify",
    )
    return case_id


def issue(world: World, user: str | None = None) -> httpx.Response:
    return world.notify("POST", "/api/digests/issue", user or world.buyer)


def case_ids(digest_file: dict[str, Any]) -> list[str]:
    return [item["case_id"] for item in digest_file["digest"]["items"]]


async def disclosures_to(world: World, org: str, cases: set[str]) -> int:
    """The `envelope.disclosed` events on the topic of `cases` to a principal of `org`."""
    count = 0
    for raw in await records_on(world.settings, DISCLOSURES):
        event = json.loads(raw)
        if event.get("subject") in cases and event["data"]["principal"]["org"] == org:
            count += 1
    return count


async def test_cursor_pulls_return_only_what_is_new_and_disclose_each_digest_once(
    world: World,
) -> None:
    last = world.last_seq()
    cases = {submit(world, f"night shifts unpaid {n} {uuid.uuid4().hex[:6]}") for n in range(2)}
    issued = issue(world)
    assert issued.status_code == 201, issued.text
    digest = issued.json()
    assert digest["digest"]["seq"] == last + 1 and set(case_ids(digest)) == cases
    assert digest["digest"]["reason"] == "on-request"

    token = world.token(world.buyer)
    page = digest_page(world.settings, token, since=last).json()
    assert (page["digests"], page["next"], page["more"]) == ([digest], last + 1, False)
    empty = digest_page(world.settings, token, since=last + 1).json()
    assert (empty["digests"], empty["next"], empty["more"]) == ([], last + 1, False)
    assert issue(world).status_code == 204, "nothing pending: nothing issued"

    assert await disclosures_to(world, world.org, cases) == 2, "one per case, at the hand-out"
    for _ in range(2):
        assert world.digests(since=0)[-1] == digest
    assert await disclosures_to(world, world.org, cases) == 2, "pulling again discloses nothing"

    first = digest_page(world.settings, token, since=0, limit=1).json()
    assert [d["digest"]["seq"] for d in first["digests"]] == [1]
    assert (first["next"], first["more"]) == (1, last + 1 > 1)
    later = submit(world, f"fire door chained {uuid.uuid4().hex[:6]}")
    assert issue(world).status_code == 201
    [newest] = world.digests(since=last + 1)
    assert newest["digest"]["seq"] == last + 2 and case_ids(newest) == [later]
    before = world.mongo.notify_digests.find_one({"_id": f"{world.org}:{last + 1}"})
    assert before is not None and newest["digest"]["previous"] == before["digest_hash"]


def test_a_critical_case_reaches_the_buyer_in_an_urgent_digest_at_once(world: World) -> None:
    last = world.last_seq()
    case_id = submit(world, f"locked in at night {uuid.uuid4().hex[:6]}", urgent=True)

    def urgent() -> list[dict[str, Any]]:
        return [d for d in world.digests(since=last) if case_id in case_ids(d)]

    [digest] = wait_for(urgent, timeout=WAIT, what="the urgent digest (no one asked for it)")
    assert digest["digest"]["reason"] == "urgent"
    [item] = digest["digest"]["items"]
    assert (item["severity"], item["urgent"], item["change"]) == ("critical", True, "new")


def pulled_cases(world: World, folder: Path, *extra: str) -> list[dict[str, Any]]:
    result = hotline(
        "digests", "pull", "--key", str(world.key_file), "--out", str(folder), "--json", *extra,
        token=world.token(world.buyer),
    )  # fmt: skip
    cases: list[dict[str, Any]] = json.loads(result.stdout)
    return cases


def verify(world: World, *args: str) -> Any:
    return hotline("digests", "verify", *args, token=world.token(world.buyer), check=False)


def verified(world: World, folder: Path) -> Any:
    """`digests verify --all`, once the audit log has caught up with the digests held."""

    def ok() -> Any:
        result = verify(world, "--all", "--dir", str(folder))
        return result if result.returncode == 0 else None

    return wait_for(ok, timeout=WAIT, what="digests verify --all to pass")


def at_least_digests(world: World, count: int) -> None:
    while world.last_seq() < count:
        submit(world, f"overtime {uuid.uuid4().hex[:6]}")
        assert issue(world).status_code == 201


def test_the_cli_pulls_verifies_opens_and_exports_the_digests(world: World, tmp_path: Path) -> None:
    text = f"the canteen closed for a week {uuid.uuid4().hex[:6]}"
    case_id = submit(world, text)
    folder = tmp_path / "digests"

    cases = pulled_cases(world, folder, "--now")  # issued on request: not critical, not due
    [case] = [c for c in cases if c["case_id"] == case_id]
    assert case["content"] == text and "identity" not in case
    assert "Wang, dormitory" not in json.dumps(cases)
    held = sorted(folder.glob("digest-*.json"))
    state = json.loads((folder / "state.json").read_text())
    assert len(held) == world.last_seq() == state["seq"] and state["buyer"] == world.org
    assert pulled_cases(world, folder) == [], "a second pull fetches nothing"
    again = hotline(
        "digests", "pull", "--key", str(world.key_file), "--out", str(folder),
        token=world.token(world.buyer),
    )  # fmt: skip
    assert "no new digests" in again.stdout

    first_run = verified(world, folder)
    assert "VERIFIED" in first_run.stdout and "trust on first use" in first_run.stderr
    served = world.notify("GET", "/vkey", None).text.strip()
    assert json.loads((folder / "state.json").read_text())["vkey"] == served
    assert "trust on first use" not in verify(world, "--all", "--dir", str(folder)).stderr

    [newest] = [p for p in held if case_id in p.read_text()]
    opened = hotline_json(
        "digests", "open", str(newest), "--key", str(world.key_file), token=world.token(world.buyer)
    )
    assert [c["content"] for c in opened if c["case_id"] == case_id] == [text]
    exported = hotline("digests", "export", "--format", "csv", "--dir", str(folder)).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert case_id in {row["case_id"] for row in rows}
    assert all(row["content"] == "" for row in rows), "no text without --key"
    with_text = hotline(
        "digests", "export", "--format", "json", "--dir", str(folder), "--key", str(world.key_file)
    ).stdout
    assert text in with_text


def test_verify_names_a_tampered_a_dropped_a_reordered_and_a_rewritten_digest(
    world: World, tmp_path: Path
) -> None:
    at_least_digests(world, 3)
    clean = tmp_path / "clean"
    pulled_cases(world, clean)
    verified(world, clean)

    def copy(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(clean, folder)
        return folder

    def failure(folder: Path) -> str:
        result = verify(world, "--all", "--dir", str(folder))
        assert result.returncode == 1 and "VERIFY FAILED" in result.stdout, result.stdout
        return str(result.stdout)

    def file_of(folder: Path, seq: int) -> Path:
        return folder / f"digest-{seq:08d}.json"

    tampered = copy("tampered")
    document = json.loads(file_of(tampered, 2).read_text())
    document["digest"]["items"][0]["status"] = "closed"
    file_of(tampered, 2).write_text(json.dumps(document))
    assert "digest-00000002.json: digest 2: the signature is over another digest" in failure(
        tampered
    )

    dropped = copy("dropped")
    file_of(dropped, 2).unlink()
    assert "digest 2 missing (between 1 and 3)" in failure(dropped)
    truncated = copy("truncated")
    last = world.last_seq()
    file_of(truncated, last).unlink()
    assert f"digest {last} was pulled, but not in" in failure(truncated)

    # Forged with notify's own key (from the session's data directory), so every signature
    # verifies: digests 2 and 3 swapped, then a whole history rewritten consistently.
    key_path = world.settings.data / "notify" / "digest-signing.key"
    signer = Ed25519Signer(
        world.settings.digest_origin, bytes(load_or_create_signing_key(key_path))
    )
    reordered = copy("reordered")
    bodies = {seq: json.loads(file_of(clean, seq).read_text())["digest"] for seq in (2, 3)}
    for seq, body in ((2, bodies[3]), (3, bodies[2])):
        moved = {**body, "seq": seq}
        file_of(reordered, seq).write_text(
            json.dumps({"digest": moved, "note": sign_digest(signer, moved)[1]})
        )
    assert "digest 2 does not chain to digest 1" in failure(reordered)
    rewritten = copy("rewritten")
    previous = None
    for path in sorted(rewritten.glob("digest-*.json")):
        body = json.loads(path.read_text())["digest"]
        body = {**body, "previous": previous, "issued": "2020-01-01T00:00:00Z"}
        previous, note = sign_digest(signer, body)
        path.write_text(json.dumps({"digest": body, "note": note}))
    rewrite = failure(rewritten)
    assert "does not chain" not in rewrite and "signature" not in rewrite
    assert "digest 1 is not in the audit log" in rewrite


def test_a_buyer_sees_only_its_own_digests_and_never_identity(world: World, tmp_path: Path) -> None:
    case_id = submit(world, f"badges kept by the office {uuid.uuid4().hex[:6]}")
    assert issue(world).status_code == 201
    assert issue(world, world.other_buyer).status_code == 204, "buyer2 has nothing pending"
    theirs = world.digests(user=world.other_buyer)
    assert all(d["digest"]["buyer"] == world.other_org for d in theirs)
    mine = json.dumps(world.digests())
    assert case_id in mine and case_id not in json.dumps(theirs)
    case = world.mongo.triage_cases.find_one({"_id": case_id})
    assert case is not None and case["identity"]["ciphertext"] not in mine
    assert case["reply_key"] not in mine and '"identity"' not in mine
    other_token = world.token(world.other_buyer)
    foreign = world.notify("POST", f"/api/cases/{case_id}/ack", world.other_buyer)
    assert foreign.status_code == 404
    pull = hotline(
        "digests", "pull", "--key", str(world.other_key_file), "--out",
        str(tmp_path / "other"), "--json", token=other_token,
    )  # fmt: skip
    assert case_id not in pull.stdout


def test_the_digest_api_refuses_other_roles_and_bad_cursors(world: World) -> None:
    assert world.notify("GET", "/api/digests", None).status_code == 401
    assert world.notify("GET", "/api/digests", "operator").status_code == 403
    assert world.notify("POST", "/api/digests/issue", "operator").status_code == 403
    for params in ({"since": -1}, {"limit": 0}, {"limit": 201}, {"since": "x"}):
        refused = world.notify("GET", "/api/digests", world.buyer, params=params)
        assert refused.status_code == 422, (params, refused.text)
    vkey = world.notify("GET", "/vkey", None)
    assert vkey.status_code == 200 and vkey.headers["content-type"].startswith("text/plain")
    assert vkey.text.startswith(f"{world.settings.digest_origin}+")


def test_digests_ack_reaches_the_operators_conversation_once(world: World) -> None:
    case_id = submit(world, f"the lift is broken {uuid.uuid4().hex[:6]}")
    token = world.token(world.buyer)
    acked = hotline_json("digests", "ack", case_id, token=token)
    assert acked["case_id"] == case_id
    again = hotline_json("digests", "ack", case_id, token=token)
    assert again["message_id"] == acked["message_id"], "noting twice changes nothing"

    def noted() -> list[dict[str, Any]]:
        found = httpx.get(
            f"{world.settings.triage_url}/api/cases/{case_id}/messages",
            headers={"Authorization": f"Bearer {world.token('operator')}"},
            timeout=60,
            verify=tls(),
        )
        assert found.status_code == 200, found.text
        return [m for m in found.json()["messages"] if m["kind"] == "noted"]

    [message] = wait_for(noted, timeout=WAIT, what="the noted message at triage")
    assert (message["message_id"], message["author_role"]) == (acked["message_id"], "buyer")
    assert message["envelope"] is None
    unknown = hotline("digests", "ack", str(uuid.uuid4()), token=token, check=False)
    assert unknown.returncode != 0 and "404" in unknown.stderr
