"""Retention against the running system (issue 18): a closed case's identity, then its
content, deleted from every service's collections under its factory's policy, announced on
Kafka and in the audit log, which still verifies; the policy's admin API; and the Kafka
topics that carry envelopes bounded as declared.

One case is taken through its whole life once (module fixture `retained`): reported with an
identity and a photo through intake's API (as the form sends it), answered by the operator
(`hotline cases reply`), listed in a buyer's digest, closed, and then retention's round run
in this process with `now` past each of the policy's deadlines (the round is a function of
`now`: no clock is moved under the running services' feet, and no test waits days). The
running triage's own scheduler may take the first look meanwhile: it writes the same
decisions, guarded, so the test holds whichever does.

Then what a deletion must not let back in: a digest built before the deletion and stored
after it (notify's issuer on a database of its own, driven step by step: build, delete,
store), a digest handed out while the deletion is under way, a worker's answer to the
deleted case, and a message recorded after it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines import kafka
from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.intake.collections import COLLECTIONS as INTAKE_COLLECTIONS
from hotline.intake.conversation import record_event
from hotline.notify.collections import COLLECTIONS as NOTIFY_COLLECTIONS
from hotline.notify.consumer import add_to_digests
from hotline.notify.digests import digest_file_json
from hotline.notify.erasure import delete_copies, mark_deleted
from hotline.notify.issuance import Issuer
from hotline.notify.signing import digest_signer
from hotline.notify.webhooks import digest_message_id
from hotline.shared import registry
from hotline.shared.bus import make_producer
from hotline.shared.clock import SystemClock, hour_of
from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope, envelope_hash, seal_envelope
from hotline.shared.events import (
    DEAD_LETTER_TOPIC,
    EnvelopesDeleted,
    Event,
    EventError,
    EventType,
    MessagePosted,
    new_event,
    parse_event,
    topic_for,
)
from hotline.shared.keys import b64decode_strict, b64encode, generate_keypair, key_id
from hotline.shared.messages import message_routing
from hotline.shared.outbox import relay_for
from hotline.shared.pow import solve
from hotline.shared.receipt import derive_receipt, new_receipt
from hotline.shared.reports import ProofOfWork, ReportCreate, routing_metadata
from hotline.shared.roles import Role
from hotline.shared.service import Runtime
from hotline.shared.store import Collections, Databases, Store
from hotline.triage.collections import COLLECTIONS
from hotline.triage.messages import record_message
from hotline.triage.retention import retention_round
from tests.support.audit import served_size, system_entries
from tests.support.cli import hotline, hotline_json
from tests.support.digests import digest_page, notify_store, report_event
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import unless_busy, wait_for

Document = dict[str, Any]
WAIT = 60.0
IDENTITY_DAYS, CONTENT_DAYS = 3, 10
DELETIONS = topic_for(EventType.ENVELOPES_DELETED)
# The topics whose records carry ciphertext (envelopes), and so must not keep it forever.
ENVELOPE_TOPICS = (
    topic_for(EventType.REPORT_SUBMITTED),
    topic_for(EventType.MESSAGE_POSTED),
    DEAD_LETTER_TOPIC,
)


@dataclass
class World:
    settings: Settings
    mongo: Databases[Collection[Document]]
    factory: str
    buyer: str
    buyer_user: str
    admin: AdminApi = field(init=False)

    def __post_init__(self) -> None:
        self.admin = AdminApi(self.settings)

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def call(self, method: str, url: str, user: str | None, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.request(method, url, json=body, headers=headers, timeout=60, verify=tls())

    def policy(
        self, method: str, org: str, user: str = "admin", body: Any = None
    ) -> httpx.Response:
        return self.call(
            method, f"{self.settings.triage_url}/api/admin/retention/{org}", user, body
        )


@dataclass
class Retained:
    """The case taken through its life, and what it held."""

    case_id: str
    content: Envelope
    identity: Envelope
    photo: Envelope
    message: Document  # triage's record of the operator's reply (its envelope)
    closed: datetime
    after_identity: Document  # envelopes.deleted of the identity round
    after_content: Document  # and of the content round
    lookup_token: str  # the worker's, derived from the receipt (the status page's key)

    def ciphertexts(self) -> dict[str, str]:
        """The base64 ciphertext of every envelope of the case, by what it is."""
        return {
            "content": self.content.ciphertext,
            "identity": self.identity.ciphertext,
            "photo": self.photo.ciphertext,
            "reply": self.message["envelope"]["ciphertext"],
        }


@pytest.fixture(scope="module")
def world(system: LocalSystem) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    operator, buyer_key = Party.new(), Party.new()
    admin.created("operator-keys", {"public_key": operator.public_b64})
    factory = unique_factory_code()
    admin.created("factories", {"code": factory, "name": "Kestrel Toys", "country": "CN"})
    buyer = unique_buyer_id()
    admin.created(
        "buyers", {"buyer_id": buyer, "name": "Kestrel Buyer", "public_key": buyer_key.public_b64}
    )
    admin.created("links", {"buyer_id": buyer, "factory": factory})
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(
            settings=settings,
            mongo=Databases(client, settings.mongo_db),
            factory=factory,
            buyer=buyer,
            buyer_user=add_user(settings, Role.BUYER, buyer),
        )


@dataclass
class Submitted:
    case_id: str
    content: Envelope
    identity: Envelope
    photo: Envelope
    lookup_token: str


def recipients(settings: Settings, factory: str) -> dict[str, dict[str, bytes]]:
    """The keys intake names for the factory's reports: content and identity, by key id."""
    keys = httpx.get(
        f"{settings.intake_url}/api/recipients/{factory}", timeout=30, verify=tls()
    ).json()
    return {
        part: {kid: b64decode_strict(pub) for kid, pub in keys[part].items()}
        for part in ("content", "identity")
    }


def solved(settings: Settings) -> ProofOfWork:
    issued = httpx.get(f"{settings.intake_url}/api/challenge", timeout=30, verify=tls()).json()
    return ProofOfWork(
        challenge=issued["challenge"], solution=solve(issued["challenge"], issued["difficulty"])
    )


def submit_with_photo(
    world: World, factory: str | None = None, category: str = "safety"
) -> Submitted:
    """A report with an identity and a photo, sealed as the form seals it, to the keys intake
    names for the factory (the world's unless given)."""
    settings = world.settings
    factory = factory or world.factory
    keys = recipients(settings, factory)
    content_keys, identity_keys = keys["content"], keys["identity"]
    case_id = str(uuid.uuid4())
    routing = routing_metadata(factory, [category], False, "en")

    def sealed(plain: bytes, kind: Any, to: dict[str, bytes]) -> Envelope:
        return seal_envelope(plain, case_id=case_id, kind=kind, routing=routing, recipients=to)

    content = sealed(b"the fire exit on floor 3 is chained at night", "content", content_keys)
    identity = sealed(b"Li, line 4, night shift", "identity", identity_keys)
    photo = sealed(b"image/jpeg\n" + bytes(range(256)) * 40, "attachment", content_keys)
    derived = derive_receipt(new_receipt())
    report = ReportCreate(
        case_id=case_id,
        factory=factory,
        categories=[category],
        language="en",
        lookup_token=derived.lookup_token.hex(),
        reply_key=b64encode(derived.reply_public),
        content=content,
        identity=identity,
        attachments=[photo],
        pow=solved(settings),
    )
    response = httpx.post(
        f"{settings.intake_url}/api/reports",
        json=report.model_dump(mode="json"),
        timeout=60,
        verify=tls(),
    )
    assert response.status_code == 201, response.text
    return Submitted(case_id, content, identity, photo, derived.lookup_token.hex())


@asynccontextmanager
async def runtime_of(settings: Settings, collections: Collections) -> AsyncIterator[Runtime]:
    """A service's runtime in this process, over the running system's store and Kafka."""
    store = Store(settings, collections)
    producer = make_producer(settings)
    await producer.start()
    try:
        yield Runtime(settings, store, producer, relay_for(store, producer))
    finally:
        await producer.stop()
        await store.close()


async def _round(settings: Settings, now: datetime) -> int:
    """One retention round at `now`, in this process, over the running system's store; its
    events published before it returns."""
    async with runtime_of(settings, COLLECTIONS) as runtime:
        written = await retention_round(runtime, now)
        await runtime.relay.flush()
        return written


def run_round(settings: Settings, now: datetime) -> int:
    return asyncio.run(_round(settings, now))


def deletion_on_kafka(settings: Settings, case_id: str, scope: str) -> Document | None:
    for raw in asyncio.run(records_on(settings, DELETIONS)):
        try:
            event = parse_event(raw)
        except EventError:
            continue  # other tests' poison records
        if event.subject == case_id and event.data["scope"] == scope:
            return event.data
    return None


@pytest.fixture(scope="module")
def retained(world: World) -> Retained:
    settings, mongo = world.settings, world.mongo
    set_policy = world.policy(
        "PUT", world.factory, body={"identity_days": IDENTITY_DAYS, "content_days": CONTENT_DAYS}
    )
    assert set_policy.status_code == 200, set_policy.text
    submitted = submit_with_photo(world)
    case_id, content, identity, photo = (
        submitted.case_id,
        submitted.content,
        submitted.identity,
        submitted.photo,
    )
    wait_for(lambda: mongo.triage_cases.find_one({"_id": case_id}), WAIT, "the case at triage")

    hotline("cases", "reply", case_id, "--text", "We are on it.", token=world.token("operator"))
    message = wait_for(
        lambda: mongo.triage_messages.find_one({"case_id": case_id, "kind": "reply"}),
        WAIT,
        "the reply at triage",
    )
    wait_for(
        lambda: mongo.intake_messages.find_one({"case_id": case_id}), WAIT, "the reply at intake"
    )
    wait_for(
        lambda: mongo.notify_items.find_one({"case_id": case_id, "change": "new"}),
        WAIT,
        "the buyer's record of the report",
    )
    # A safety report is critical: its urgent digest is issued at once (else: on request).
    issued = world.call("POST", f"{settings.notify_url}/api/digests/issue", world.buyer_user)
    assert issued.status_code in (201, 204), issued.text
    digest = wait_for(
        lambda: mongo.notify_digests.find_one({"cases": case_id}), WAIT, "the buyer's digest"
    )
    assert content.ciphertext in digest["body"], "the buyer's digest holds the content"

    closing = {"status": "closed", "reason": "fixed on site"}
    url = f"{settings.triage_url}/api/cases/{case_id}/status"
    closed = world.call("POST", url, "operator", closing)
    assert closed.status_code == 200, closed.text
    case = mongo.triage_cases.find_one({"_id": case_id})
    assert case is not None and case["closed"]
    closed_at = datetime.fromisoformat(case["closed"].replace("Z", "+00:00"))

    # Before the identity's deadline nothing is deleted: the round only sets when to look.
    run_round(settings, closed_at + timedelta(days=IDENTITY_DAYS) - timedelta(hours=1))
    case = mongo.triage_cases.find_one({"_id": case_id})
    assert case is not None and case["identity"] is not None and "deleted" not in case

    run_round(settings, closed_at + timedelta(days=IDENTITY_DAYS, hours=1))
    after_identity = wait_for(
        lambda: deletion_on_kafka(settings, case_id, "identity"), WAIT, "the identity's deletion"
    )
    run_round(settings, closed_at + timedelta(days=CONTENT_DAYS, hours=1))
    after_content = wait_for(
        lambda: deletion_on_kafka(settings, case_id, "content"), WAIT, "the content's deletion"
    )
    return Retained(
        case_id,
        content,
        identity,
        photo,
        message,
        closed_at,
        after_identity,
        after_content,
        submitted.lookup_token,
    )


# --- the policy ------------------------------------------------------------------------------


def test_a_policy_is_set_and_read_by_the_admin_only(world: World) -> None:
    body = {"identity_days": 7, "content_days": 90}
    other = unique_factory_code()
    world.admin.created("factories", {"code": other, "name": "Plover Toys", "country": "VN"})
    inherited = world.policy("GET", other)
    assert inherited.status_code == 200, inherited.text
    assert inherited.json()["applies"] == "default"

    assert world.policy("PUT", other, body=body).json() == {
        "org": other,
        "identity_days": 7,
        "content_days": 90,
        "applies": other,
    }
    assert world.policy("GET", other).json()["applies"] == other
    assert world.policy("PUT", other, user="operator", body=body).status_code == 403
    assert world.policy("GET", other, user="operator").status_code == 403


def test_bad_policies_are_refused_and_change_nothing(world: World) -> None:
    other = unique_factory_code()
    world.admin.created("factories", {"code": other, "name": "Avocet Toys", "country": "BD"})
    good = {"identity_days": 5, "content_days": 50}
    assert world.policy("PUT", other, body=good).status_code == 200
    for bad in (
        {"identity_days": 60, "content_days": 30},  # identity would outlive the content
        {"identity_days": -1, "content_days": 30},
        {"identity_days": 1, "content_days": 10**9},
        {"identity_days": "soon", "content_days": 30},
        {"identity_days": 1},
        {"identity_days": 1, "content_days": 2, "consent": True},
    ):
        refused = world.policy("PUT", other, body=bad)
        assert refused.status_code == 422, (bad, refused.text)
    assert world.policy("GET", other).json()["identity_days"] == 5
    assert world.policy("PUT", "F-NOSUCH01", body=good).status_code == 404
    assert world.policy("GET", "F-NOSUCH01").status_code == 404
    assert world.policy("GET", "not an org").status_code == 422


def test_the_cli_sets_and_shows_a_policy(world: World) -> None:
    other = unique_factory_code()
    world.admin.created("factories", {"code": other, "name": "Tern Toys", "country": "ID"})
    token = world.token("admin")
    args = ("admin", "retention", "set", other, "--identity-days", "2", "--content-days", "20")
    assert hotline_json(*args, token=token)["content_days"] == 20
    shown = hotline("admin", "retention", "show", other, token=token).stdout
    assert f"{other}: identity deleted 2 days after closure, content 20 days" in shown


# --- deletion --------------------------------------------------------------------------------


def test_the_identity_goes_first_from_triage_and_intake(world: World, retained: Retained) -> None:
    assert retained.after_identity == {
        "scope": "identity",
        "policy": world.factory,
        "envelopes": [
            {"envelope_class": "identity", "envelope_hash": envelope_hash(retained.identity)}
        ],
    }
    case = world.mongo.triage_cases.find_one({"_id": retained.case_id})
    assert case is not None
    assert set(case["deleted"]) == {"identity", "content"}
    assert case["deleted"]["identity"] < case["deleted"]["content"]
    wait_for(
        lambda: world.mongo.intake_cases.find_one({"_id": retained.case_id, "identity": None}),
        WAIT,
        "the identity gone from intake",
    )


def test_the_content_goes_from_every_collection(world: World, retained: Retained) -> None:
    mongo, case_id = world.mongo, retained.case_id
    case = mongo.triage_cases.find_one({"_id": case_id})
    assert case is not None
    assert (case["content"], case["identity"], case["retention_next"]) == (None, None, None)
    assert case["status"] == "closed", "the case stays, with its routing and status"
    assert mongo.triage_messages.count_documents({"case_id": case_id}) == 0

    def intake_cleared() -> bool:
        stored = mongo.intake_cases.find_one({"_id": case_id})
        return (
            stored is not None
            and stored["content"] is None
            and mongo.intake_attachments.count_documents({"case_id": case_id}) == 0
            and mongo.intake_messages.count_documents({"case_id": case_id}) == 0
        )

    wait_for(intake_cleared, WAIT, "the content gone from intake")

    def notify_cleared() -> bool:
        records = list(mongo.notify_items.find({"case_id": case_id, "change": "new"}))
        digests = list(mongo.notify_digests.find({"cases": case_id}))
        return (
            bool(records and digests)
            and all(r["content"] is None for r in records)
            and all(retained.content.ciphertext not in d["body"] for d in digests)
        )

    wait_for(notify_cleared, WAIT, "the content gone from notify's records and digests")


def test_the_deletion_lists_every_envelope_with_its_hash(world: World, retained: Retained) -> None:
    """The content round lists the content, the report's photo and the conversation's
    message (the identity went in the round before)."""
    listed = {
        (e["envelope_class"], e["envelope_hash"]) for e in retained.after_content["envelopes"]
    }
    assert listed == {
        ("content", envelope_hash(retained.content)),
        ("attachment", envelope_hash(retained.photo)),
        ("message", envelope_hash(retained.message["envelope"])),
    }
    assert retained.after_content["policy"] == world.factory


def test_a_deleted_case_is_gone_for_the_operator_and_nothing_is_disclosed(
    world: World, retained: Retained
) -> None:
    url = f"{world.settings.triage_url}/api/cases/{retained.case_id}"
    disclosures = world.mongo.triage_disclosures
    before = disclosures.count_documents({"case_id": retained.case_id})
    shown = world.call("GET", url, "operator")
    assert shown.status_code == 410, shown.text
    assert retained.content.ciphertext not in shown.text
    messages = world.call("GET", f"{url}/messages", "operator")
    assert messages.status_code in (200, 410), messages.text
    assert retained.message["envelope"]["ciphertext"] not in messages.text
    assert disclosures.count_documents({"case_id": retained.case_id}) == before
    queue = f"{world.settings.triage_url}/api/cases?status=closed&factory={world.factory}"
    listed = world.call("GET", queue, "operator")
    assert retained.case_id in {c["case_id"] for c in listed.json()["cases"]}


def test_no_database_file_holds_the_ciphertext(system: LocalSystem, retained: Retained) -> None:
    """Every file of the database under the data directory (SQLite's files and their
    write-ahead logs), searched for each envelope's ciphertext."""
    mongo_dir = system.settings.data / "mongo"
    files = [path for path in mongo_dir.rglob("*") if path.is_file()]
    assert files, f"no database files under {mongo_dir}"
    wanted = {what: text.encode() for what, text in retained.ciphertexts().items()}

    def holding() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for path in files:
            data = path.read_bytes()
            for what, needle in wanted.items():
                if needle in data:
                    found.setdefault(what, []).append(path.name)
        return found

    found = holding()
    live = {what: live_rows(files, wanted[what]) for what in found}
    assert found == {}, f"in the files: {found}; in live rows (table names): {live}"


def live_rows(files: list[Path], needle: bytes) -> list[str]:
    """The tables of the SQLite files whose live rows hold `needle` (read-only): tells a
    copy still stored from bytes left in freed pages or the write-ahead log."""
    tables: list[str] = []
    for path in files:
        if path.suffix != ".db":
            continue
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            names = [
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in names:
                for row in db.execute(f'SELECT * FROM "{name}"'):
                    if any(needle in str(value).encode() for value in row):
                        tables.append(f"{path.name}:{name}")
                        break
    return tables


def test_the_audit_log_still_verifies(world: World, retained: Retained, tmp_path: Path) -> None:
    def logged() -> Document | None:
        entries = [
            e
            for e in system_entries(world.settings, retained.case_id)
            if e["entry"]["type"] == EventType.ENVELOPES_DELETED
        ]
        if len(entries) == 2 and served_size(world.settings.audit_url) > max(
            e["index"] for e in entries
        ):
            return entries[-1]
        return None

    entry = wait_for(logged, WAIT, "both deletions in the audit log under a checkpoint")
    assert "ciphertext" not in json.dumps(entry)
    vkey = httpx.get(f"{world.settings.audit_url}/vkey", timeout=30, verify=tls()).text.strip()
    verdict = hotline_json("audit", "verify", "--vkey", vkey, "--state", str(tmp_path / "s.json"))
    assert verdict["failures"] == []
    assert verdict["policy"]["deleted_envelopes"] >= 4


# --- nothing comes back ----------------------------------------------------------------------


def content_deletion(case_id: str) -> Event:
    """A case's content deletion as triage publishes it (notify reads its scope only)."""
    deletion = EnvelopesDeleted(scope="content", policy="default", envelopes=[])
    return parse_event(new_event(case_id, deletion).to_bytes())


async def test_a_digest_built_before_a_deletion_and_stored_after_it_keeps_no_ciphertext(
    test_settings: Settings, system: LocalSystem
) -> None:
    """The race in the order that keeps the ciphertext unless the issuer looks again: the
    digest is built (its record's content read), the deletion runs to its end while no
    digest lists the case yet, then the digest is stored."""
    async with notify_store(test_settings) as notify:
        factory = unique_factory_code()
        await registry.add_factory(notify.registry, factory, "Heron Toys", "CN")
        buyer = await notify.buyer("acme", factory)
        report = report_event(factory, {"operator": Party.new(), "acme": buyer})
        await add_to_digests(notify.issuer, report)
        ciphertext = report.data["content"]["ciphertext"]

        draft = await notify.issuer.draft("acme", "on-request")
        assert draft is not None and ciphertext in draft.document["body"]
        deletion = content_deletion(report.subject)
        await delete_copies(notify.issuer.store, deletion)
        stored = await notify.issuer.commit(draft)

        assert stored is not None and ciphertext not in stored["body"]
        kept = await notify.digests.find_one({"_id": stored["_id"]})
        assert kept is not None and ciphertext not in kept["body"]
        [item] = json.loads(kept["body"])["items"]
        assert (item["case_id"], item["content"], item["attachments"]) == (report.subject, None, [])
        assert kept["redacted"] == {report.subject: deletion.time}
        assert kept["digest_hash"] == draft.document["digest_hash"], "signed as issued"


async def test_while_a_deletion_runs_nothing_sealed_of_the_case_is_built_or_kept(
    test_settings: Settings, system: LocalSystem
) -> None:
    """Notify has marked the cases deleted (erasure's first step) and not reached their
    copies yet: a digest built now lists them with nothing sealed, a report recorded now
    keeps nothing sealed; then the erasure takes the content out of the digest issued
    before and out of the webhook message that carries it."""
    async with notify_store(test_settings) as notify:
        factory = unique_factory_code()
        await registry.add_factory(notify.registry, factory, "Heron Toys", "CN")
        sealed_to = {"operator": Party.new(), "acme": await notify.buyer("acme", factory)}
        store, issuer = notify.issuer.store, notify.issuer
        first_report, pending, late = (report_event(factory, sealed_to) for _ in range(3))
        await add_to_digests(issuer, first_report)
        first = await issuer.issue("acme", "on-request")
        assert first is not None
        message_id = f"acme:{digest_message_id('acme', first['seq'])}"
        await store.db.notify_webhook_messages.insert_one(  # queued as webhooks.py queues it
            {"_id": message_id, "buyer": "acme", "payload": digest_file_json(first)}
        )
        await add_to_digests(issuer, pending)
        hour = hour_of(notify.clock.now())
        for report in (first_report, pending, late):
            await mark_deleted(store, report.subject, hour)
        await add_to_digests(issuer, late)  # a report.submitted delivered after the deletion
        ciphertexts = {r.subject: r.data["content"]["ciphertext"] for r in (pending, late)}

        late_record = await notify.items.find_one({"case_id": late.subject})
        assert late_record is not None and late_record["content"] is None
        second = await issuer.issue("acme", "on-request")
        assert second is not None and set(second["cases"]) == set(ciphertexts)
        assert not any(text in second["body"] for text in ciphertexts.values())

        await delete_copies(store, content_deletion(first_report.subject))
        old = first_report.data["content"]["ciphertext"]
        kept = await notify.digests.find_one({"_id": first["_id"]})
        assert kept is not None and old not in kept["body"]
        queued = await store.db.notify_webhook_messages.find_one({"_id": message_id})
        assert queued is not None and old not in queued["payload"]
        assert json.loads(queued["payload"])["digest"] == json.loads(kept["body"])


async def _issue_and_begin_deletion(settings: Settings, buyer: str, case_id: str) -> Document:
    """The buyer's digest issued as notify issues it (its key, not handed out), then the
    case's deletion begun at notify: marked deleted, its copies not reached yet."""
    async with runtime_of(settings, NOTIFY_COLLECTIONS) as notify:
        issuer = Issuer(notify.store, digest_signer(settings), SystemClock())
        digest = await issuer.issue(buyer, "on-request")
        assert digest is not None
        await mark_deleted(notify.store, case_id, hour_of(SystemClock().now()))
        return digest


async def _finish_deletion(settings: Settings, case_id: str) -> None:
    async with runtime_of(settings, NOTIFY_COLLECTIONS) as notify:
        await delete_copies(notify.store, content_deletion(case_id))


def test_a_digest_handed_out_during_a_deletion_leaves_without_the_case_undisclosed(
    world: World,
) -> None:
    """A digest not handed out yet, its case's deletion under way at notify: the buyer's
    pull serves the case with nothing sealed and records no hand-out of its envelope."""
    settings, mongo = world.settings, world.mongo
    factory, buyer = unique_factory_code(), unique_buyer_id()
    world.admin.created("factories", {"code": factory, "name": "Egret Toys", "country": "CN"})
    world.admin.created(
        "buyers", {"buyer_id": buyer, "name": "Egret Buyer", "public_key": Party.new().public_b64}
    )
    world.admin.created("links", {"buyer_id": buyer, "factory": factory})
    buyer_user = add_user(settings, Role.BUYER, buyer)
    submitted = submit_with_photo(world, factory, category="hours")  # no urgent digest
    wait_for(
        lambda: mongo.notify_items.find_one({"case_id": submitted.case_id, "buyer": buyer}),
        WAIT,
        "the buyer's record of the report",
    )
    digest = asyncio.run(_issue_and_begin_deletion(settings, buyer, submitted.case_id))
    ciphertext = submitted.content.ciphertext
    [issued] = json.loads(digest["body"])["items"]
    assert ciphertext in digest["body"] and issued["attachments"], "issued with both"

    pulled = digest_page(settings, world.token(buyer_user))

    assert pulled.status_code == 200, pulled.text
    assert ciphertext not in pulled.text
    [served] = pulled.json()["digests"]
    [item] = served["digest"]["items"]
    assert (item["case_id"], item["content"], item["attachments"]) == (
        submitted.case_id,
        None,
        [],
    )
    assert mongo.notify_disclosures.count_documents({"case_id": submitted.case_id}) == 0
    # (The stored digest may already be redacted here: notify's consumer of digest.issued
    # redacts what it queues for a case marked deleted. Either way the erasure ends it.)
    asyncio.run(_finish_deletion(settings, submitted.case_id))
    stored = mongo.notify_digests.find_one({"_id": digest["_id"]})
    assert stored is not None and ciphertext not in stored["body"]


def deleted_at_intake(world: World, case_id: str) -> None:
    def marked() -> bool:
        case = world.mongo.intake_cases.find_one({"_id": case_id}, {"deleted": 1})
        return case is not None and "content" in (case.get("deleted") or {})

    wait_for(marked, WAIT, "the content's deletion marked at intake")


def test_an_answer_to_a_deleted_case_is_refused_and_stores_nothing(
    world: World, retained: Retained
) -> None:
    settings, mongo, case_id = world.settings, world.mongo, retained.case_id
    deleted_at_intake(world, case_id)
    operators = recipients(settings, world.factory)["identity"]
    message_id = str(uuid.uuid4())
    routing = message_routing(message_id, "answer")

    def sealed(plain: bytes, kind: Any) -> Document:
        envelope = seal_envelope(
            plain, case_id=case_id, kind=kind, routing=routing, recipients=operators
        )
        return envelope.model_dump()

    body = {
        "lookup_token": retained.lookup_token,
        "message_id": message_id,
        "envelope": sealed(b"they chained the door again", "content"),
        "attachments": [sealed(b"image/jpeg\n" + bytes(range(256)) * 8, "attachment")],
    }
    answered = unless_busy(
        lambda: httpx.post(
            f"{settings.intake_url}/api/answers",
            json=body | {"pow": solved(settings).model_dump()},
            timeout=60,
            verify=tls(),
        ),
        what="the answer",
    )

    assert (answered.status_code, answered.json()["code"]) == (409, "case-closed"), answered.text
    assert mongo.intake_messages.count_documents({"case_id": case_id}) == 0
    assert mongo.intake_attachments.count_documents({"case_id": case_id}) == 0
    shown = unless_busy(
        lambda: httpx.post(
            f"{settings.intake_url}/api/status",
            json={"lookup_token": retained.lookup_token, "pow": solved(settings).model_dump()},
            timeout=60,
            verify=tls(),
        ),
        what="the status lookup",
    )
    assert shown.status_code == 200, shown.text
    assert (shown.json()["found"], shown.json()["status"]) == (True, "closed")


async def _deliver_late(settings: Settings, event: Event) -> None:
    """`event` handled by triage's and intake's consumers as they handle it, in this process."""
    posted = MessagePosted.model_validate(event.data)
    async with runtime_of(settings, COLLECTIONS) as triage:
        await record_message(triage, event, posted)
    async with runtime_of(settings, INTAKE_COLLECTIONS) as intake:
        await record_event(intake, event)


def test_a_message_recorded_after_the_deletion_is_gone(world: World, retained: Retained) -> None:
    """An operator's message of the deleted case reaching the consumers after the deletion
    (posted just before it, or delivered again): neither triage nor intake keeps it."""
    case_id = retained.case_id
    deleted_at_intake(world, case_id)
    _, reply_public = generate_keypair()
    message_id = str(uuid.uuid4())
    envelope = seal_envelope(
        b"we will visit on Monday",
        case_id=case_id,
        kind="content",
        routing=message_routing(message_id, "reply"),
        recipients={key_id(reply_public): reply_public},
    )
    posted = MessagePosted(
        message_id=message_id, kind="reply", author_role=Role.OPERATOR.value, envelope=envelope
    )
    asyncio.run(_deliver_late(world.settings, parse_event(new_event(case_id, posted).to_bytes())))
    assert world.mongo.triage_messages.find_one({"message_id": message_id}) is None
    assert world.mongo.intake_messages.find_one({"_id": message_id}) is None


# --- Kafka -----------------------------------------------------------------------------------


async def test_topics_that_carry_envelopes_keep_them_for_a_bounded_time(
    system: LocalSystem,
) -> None:
    declared = {spec["name"]: spec["retention_ms"] for spec in kafka.declared_topics()}
    admin = AIOKafkaAdminClient(bootstrap_servers=system.settings.kafka_bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": None})
                for name in ENVELOPE_TOPICS
            ]
        )
    finally:
        await admin.close()
    running = {
        resource[3]: int(dict((entry[0], entry[1]) for entry in resource[4])["retention.ms"])
        for response in responses
        for resource in response.resources
    }
    assert running == {name: declared[name] for name in ENVELOPE_TOPICS}
    assert all(0 < ms <= timedelta(days=90) / timedelta(milliseconds=1) for ms in running.values())
