"""Rotating a buyer's key, against the running system over real connections.

The platform admin registers a buyer's new key (`hotline admin buyer rotate-key`): from
then on intake lists and accepts the new key only, a report sealed to the revoked key is
refused, new reports reach the buyer sealed to the new key and open with it, and what it
received before still opens with the old one. The rotation is one write of the buyer's
registry document carrying `key.registered` and `key.revoked`: both reach their topics and
the audit log, whose verifier holds every later envelope to rule 8 (no envelope sealed to a
revoked key). The digest schedule (`hotline admin buyer schedule`) is set the same way.

The buyer is this module's own (an org of its own and a Keycloak user made for it): the
README walkthrough registers the demo buyer-1 in the same session, with a key it keeps.
The registry's own guarantees (one write, races, a revoked key never coming back) are
checked first against the real store, a database of its own per test.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared import registry
from hotline.shared.config import Settings
from hotline.shared.envelope import NotARecipient, open_envelope, seal_envelope
from hotline.shared.events import EventError, EventType, parse_event, topic_for
from hotline.shared.keys import (
    b64decode_strict,
    b64encode,
    generate_keypair,
    load_private_key,
    load_public_key,
)
from hotline.shared.pow import solve
from hotline.shared.reports import routing_metadata
from hotline.shared.store import Databases, Store
from hotline.triage.collections import COLLECTIONS
from tests.support.audit import served_size, system_entries
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import wait_for

Document = dict[str, Any]

# --- the registry against the real store ---------------------------------------------------


@pytest.fixture
async def store(test_settings: Settings, local_system: Any) -> AsyncIterator[Store]:
    settings = test_settings.model_copy(update={"mongo_db": f"rotation_{uuid.uuid4().hex[:12]}"})
    s = Store(settings, COLLECTIONS)
    await s.ensure_indexes()
    try:
        yield s
    finally:
        await s.drop_databases()
        await s.close()


def outbox_events(document: Document) -> list[tuple[str, str, Document]]:
    """(type, subject, data) of each event in the document's outbox, in order."""
    return [(e["type"], e["subject"], e["data"]) for e in document["outbox"].values()]


async def test_a_rotation_is_one_write_of_the_new_key_and_the_old_ones_revocation(
    store: Store,
) -> None:
    old, new = Party.new(), Party.new()
    added = await registry.add_buyer(store, "acme", "Acme", old.public_b64)
    assert (added["revoked_key_ids"], added["schedule"]) == ([], "daily")

    rotated = await registry.rotate_buyer_key(store, "acme", f" {new.public_b64}\n")
    assert (rotated["key_id"], rotated["public_key"]) == (new.key_id, new.public_b64)
    assert rotated["revoked_key_ids"] == [old.key_id]
    assert rotated["version"] == added["version"] + 1, "one write"
    # The relay does not run here: the document still holds every event it announced.
    assert outbox_events(rotated)[2:] == [
        (
            EventType.KEY_REGISTERED,
            new.key_id,
            {
                "key_id": new.key_id,
                "public_key": new.public_b64,
                "org": "acme",
                "org_kind": "buyer",
            },
        ),
        (
            EventType.KEY_REVOKED,
            old.key_id,
            {"key_id": old.key_id, "org": "acme", "org_kind": "buyer"},
        ),
    ]
    assert registry.buyer_key_ids(rotated) == [new.key_id, old.key_id]

    await registry.add_factory(store, "F-001", "Sunrise Toys", "CN")
    await registry.link(store, "acme", "F-001")
    operator = Party.new()
    await registry.add_operator_key(store, operator.public_b64)
    found = await registry.recipients_for(store, "F-001")
    assert found.content == {operator.key_id: operator.public, new.key_id: new.public}


async def test_a_refused_rotation_changes_nothing(store: Store) -> None:
    old, operator = Party.new(), Party.new()
    await registry.add_buyer(store, "acme", "Acme", old.public_b64)
    await registry.add_operator_key(store, operator.public_b64)
    before = await store.db.buyers.find_one({"_id": "acme"})
    with pytest.raises(registry.UnknownBuyer, match="no buyer nobody"):
        await registry.rotate_buyer_key(store, "nobody", Party.new().public_b64)
    with pytest.raises(registry.InvalidInput, match="public key"):
        await registry.rotate_buyer_key(store, "acme", "A" * 43 + "=")
    with pytest.raises(registry.AlreadyExists, match="buyer acme's current key"):
        await registry.rotate_buyer_key(store, "acme", old.public_b64)
    with pytest.raises(registry.AlreadyExists, match=f"operator key {operator.key_id}"):
        await registry.rotate_buyer_key(store, "acme", operator.public_b64)
    assert await store.db.buyers.find_one({"_id": "acme"}) == before


async def test_a_revoked_key_is_never_registered_again_for_anyone(store: Store) -> None:
    first, second = Party.new(), Party.new()
    await registry.add_buyer(store, "acme", "Acme", first.public_b64)
    await registry.add_buyer(store, "other", "Other", Party.new().public_b64)
    await registry.rotate_buyer_key(store, "acme", second.public_b64)
    revoked_key = first.public_b64
    with pytest.raises(registry.AlreadyExists, match="buyer acme's revoked key"):
        await registry.rotate_buyer_key(store, "acme", revoked_key)  # back to the old one
    with pytest.raises(registry.AlreadyExists, match="revoked key"):
        await registry.rotate_buyer_key(store, "other", revoked_key)
    with pytest.raises(registry.AlreadyExists, match="revoked key"):
        await registry.add_buyer(store, "newcomer", "Newcomer", revoked_key)
    with pytest.raises(registry.AlreadyExists, match="revoked key"):
        await registry.add_operator_key(store, revoked_key)
    assert await store.db.operator_keys.count_documents({}) == 0
    assert sorted([doc["_id"] async for doc in store.db.buyers.find({})]) == ["acme", "other"]


async def test_concurrent_rotations_of_one_buyer_each_revoke_a_key_once(store: Store) -> None:
    """Two admins rotate at once: the guarded write makes one of them re-read and revoke
    the key the other made current, so every key is revoked once and none is lost."""
    first, a, b = Party.new(), Party.new(), Party.new()
    await registry.add_buyer(store, "acme", "Acme", first.public_b64)
    await asyncio.gather(
        registry.rotate_buyer_key(store, "acme", a.public_b64),
        registry.rotate_buyer_key(store, "acme", b.public_b64),
    )
    doc = await store.db.buyers.find_one({"_id": "acme"})
    assert doc is not None
    current = doc["key_id"]
    [between] = {a.key_id, b.key_id} - {current}
    assert doc["revoked_key_ids"] == [first.key_id, between]
    revocations = [s for t, s, _ in outbox_events(doc) if t == EventType.KEY_REVOKED]
    assert revocations == [first.key_id, between]


async def test_two_buyers_cannot_rotate_to_one_key(store: Store) -> None:
    shared = Party.new()
    await registry.add_buyer(store, "acme", "Acme", Party.new().public_b64)
    await registry.add_buyer(store, "other", "Other", Party.new().public_b64)
    results = await asyncio.gather(
        registry.rotate_buyer_key(store, "acme", shared.public_b64),
        registry.rotate_buyer_key(store, "other", shared.public_b64),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, registry.AlreadyExists)]
    assert len(refused) == 1, results
    holders = [doc["_id"] async for doc in store.db.buyers.find({"key_id": shared.key_id})]
    assert len(holders) == 1


async def test_a_schedule_is_daily_until_set_and_its_change_announces_nothing(
    store: Store,
) -> None:
    await registry.add_buyer(store, "acme", "Acme", Party.new().public_b64)
    # A buyer registered before schedules existed has no field: its schedule is the default.
    legacy = {"_id": "legacy", "name": "Legacy", "key_id": "x25519:00", "public_key": "AA"}
    await store.db.buyers.insert_one({**legacy, "version": 1, "outbox": {}, "outbox_pending": 0})
    assert registry.schedule_of(await store.db.buyers.find_one({"_id": "legacy"}) or {}) == "daily"

    weekly = await registry.set_schedule(store, "acme", "weekly")
    assert (weekly["schedule"], weekly["version"], weekly["outbox_pending"]) == ("weekly", 2, 2)
    again = await registry.set_schedule(store, "acme", "weekly")
    assert again["version"] == 2, "setting the schedule it has writes nothing"
    with pytest.raises(registry.InvalidInput, match="schedule must be one of daily, weekly"):
        await registry.set_schedule(store, "acme", "hourly")
    with pytest.raises(registry.UnknownBuyer):
        await registry.set_schedule(store, "nobody", "daily")
    assert (await registry.set_schedule(store, "legacy", "daily"))["schedule"] == "daily"
    stored = await store.db.buyers.find_one({"_id": "acme"})
    assert stored is not None and (stored["schedule"], stored["version"]) == ("weekly", 2)


# --- through the running system --------------------------------------------------------------


@dataclass
class Rotation:
    """This module's buyer, rotated once by the CLI: its two key files (made by `hotline keys
    generate`), what the CLI said, and the case submitted before (case id -> its words)."""

    settings: Settings
    http: httpx.Client  # to intake
    mongo: Databases[Collection[Document]]
    factory: str
    buyer: str
    buyer_user: str
    old_key: Path
    new_key: Path
    old_key_id: str
    new_key_id: str
    cli_output: str
    before: dict[str, str]

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def buyer_doc(self) -> Document:
        doc = self.mongo.buyers.find_one({"_id": self.buyer})
        assert doc is not None
        return doc


def generated_key(folder: Path, name: str) -> tuple[Path, str]:
    """A key pair made by `hotline keys generate` (its id on stdout)."""
    path = folder / f"{name}.key"
    kid = hotline("keys", "generate", "--out", str(path)).stdout.strip()
    return path, kid


def sealed_report(
    http: httpx.Client, factory: str, content_to: dict[str, bytes], text: str
) -> Document:
    """A report body built as a client builds it (sealed, challenge solved), content sealed to
    `content_to`. The lookup token and reply key are random: intake cannot tell them from
    derived ones."""
    keys = http.get(f"/api/recipients/{factory}")
    assert keys.status_code == 200, keys.text
    identity_to = {kid: b64decode_strict(pub) for kid, pub in keys.json()["identity"].items()}
    case_id = str(uuid.uuid4())
    routing = routing_metadata(factory, ["wages"], False, "en")

    def sealed(plain: bytes, kind: Any, to: dict[str, bytes]) -> Document:
        envelope = seal_envelope(plain, case_id=case_id, kind=kind, routing=routing, recipients=to)
        return envelope.model_dump()

    challenge = http.get("/api/challenge").json()
    return {
        "case_id": case_id,
        **routing,
        "channel": "web",
        "lookup_token": secrets.token_bytes(32).hex(),
        "reply_key": b64encode(generate_keypair()[1]),
        "content": sealed(text.encode(), "content", content_to),
        "identity": sealed(b"line 2, day shift", "identity", identity_to),
        "attachments": [],
        "pow": {
            "challenge": challenge["challenge"],
            "solution": solve(challenge["challenge"], challenge["difficulty"]),
        },
    }


def current_recipients(http: httpx.Client, factory: str) -> dict[str, bytes]:
    keys = http.get(f"/api/recipients/{factory}")
    assert keys.status_code == 200, keys.text
    return {kid: b64decode_strict(pub) for kid, pub in keys.json()["content"].items()}


def submit(http: httpx.Client, factory: str, to: dict[str, bytes], text: str) -> str:
    body = sealed_report(http, factory, to, text)
    response = http.post("/api/reports", json=body)
    assert response.status_code == 201, response.text
    case_id: str = body["case_id"]
    return case_id


def buyer_items(settings: Settings, token: str) -> list[Document]:
    """The new cases the buyer can fetch now, each a digest item with its content envelope,
    from whichever digest API notify serves: the cursor API of issue 19 (asking for an
    issuance first, then paging from the start), else the older single list."""
    headers = {"Authorization": f"Bearer {token}"}
    issued = httpx.post(
        f"{settings.notify_url}/api/digests/issue", headers=headers, timeout=60, verify=tls()
    )
    if issued.status_code in (404, 405):  # no such route: notify before issue 19
        older = httpx.get(
            f"{settings.notify_url}/api/digest", headers=headers, timeout=60, verify=tls()
        )
        assert older.status_code == 200, older.text
        items: list[Document] = older.json()
        return items
    assert issued.status_code in (201, 204), issued.text
    items, since = [], 0
    while True:
        page = httpx.get(
            f"{settings.notify_url}/api/digests",
            params={"since": since, "limit": 200},
            headers=headers,
            timeout=60,
            verify=tls(),
        )
        assert page.status_code == 200, page.text
        answer = page.json()
        for digest_file in answer["digests"]:
            items += [i for i in digest_file["digest"]["items"] if i.get("content")]
        if not answer["more"]:
            return items
        since = answer["next"]


def item_of(settings: Settings, token: str, case_id: str) -> Document | None:
    return next((i for i in buyer_items(settings, token) if i["case_id"] == case_id), None)


def opened(item: Document, key_file: Path) -> str:
    routing = routing_metadata(
        item["factory"], item["categories"], item["urgent"], item["language"]
    )
    plain = open_envelope(
        item["content"],
        private_key=load_private_key(key_file),
        case_id=item["case_id"],
        routing=routing,
    )
    return plain.decode()


def logged(settings: Settings, subject: str, event_type: str) -> Document | None:
    """The audit log's entry of type `event_type` about `subject`, once under a checkpoint."""
    entries = [e for e in system_entries(settings, subject) if e["entry"]["type"] == event_type]
    if entries and served_size(settings.audit_url) > entries[0]["index"]:
        return entries[0]
    return None


@pytest.fixture(scope="module")
def mongo(system: LocalSystem) -> Iterator[Databases[Collection[Document]]]:
    client: MongoClient[Document] = MongoClient(system.settings.mongo_url)
    with client:
        yield Databases(client, system.settings.mongo_db)


@pytest.fixture(scope="module")
def rotation(
    system: LocalSystem,
    mongo: Databases[Collection[Document]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rotation]:
    settings = system.settings
    admin = AdminApi(settings)
    keys = tmp_path_factory.mktemp("rotation-keys")
    old_key, old_kid = generated_key(keys, "old")
    new_key, new_kid = generated_key(keys, "new")
    buyer = f"rotate-{uuid.uuid4().hex[:8]}"
    buyer_user = add_user(settings, "buyer", buyer)
    factory = unique_factory_code()
    admin.created("operator-keys", {"public_key": Party.new().public_b64})
    admin.created("factories", {"code": factory, "name": "Rotation Toys", "country": "VN"})
    admin_token = password_token(settings, "admin", "admin")
    hotline(
        "admin", "buyer", "add", buyer, "--name", "Rotation Brand",
        "--public-key-file", f"{old_key}.pub", token=admin_token,
    )  # fmt: skip
    admin.created("links", {"buyer_id": buyer, "factory": factory})
    with httpx.Client(base_url=settings.intake_url, timeout=60, verify=tls()) as http:
        before_text = f"wages late before the rotation {uuid.uuid4().hex[:8]}"
        before_case = submit(http, factory, current_recipients(http, factory), before_text)
        token = password_token(settings, buyer_user, buyer_user)
        # Before rotating: the buyer has the case, and the log has its report (a report
        # sequenced after the revocation would be sealed to a revoked key, as far as the
        # log can tell).
        wait_for(lambda: item_of(settings, token, before_case), 60, "the first case in notify")
        wait_for(
            lambda: logged(settings, before_case, EventType.REPORT_SUBMITTED),
            60,
            "the first report in the audit log",
        )
        rotated = hotline(
            "admin", "buyer", "rotate-key", buyer, "--public-key-file", f"{new_key}.pub",
            token=password_token(settings, "admin", "admin"),
        )  # fmt: skip
        yield Rotation(
            settings=settings,
            http=http,
            mongo=mongo,
            factory=factory,
            buyer=buyer,
            buyer_user=buyer_user,
            old_key=old_key,
            new_key=new_key,
            old_key_id=old_kid,
            new_key_id=new_kid,
            cli_output=rotated.stdout,
            before={before_case: before_text},
        )


def test_the_cli_rotates_the_key_in_the_registry(rotation: Rotation) -> None:
    assert rotation.cli_output.strip() == (
        f"buyer {rotation.buyer}: key {rotation.new_key_id} is current, "
        f"{rotation.old_key_id} revoked"
    )
    doc = rotation.buyer_doc()
    assert (doc["key_id"], doc["revoked_key_ids"]) == (rotation.new_key_id, [rotation.old_key_id])


def test_intake_lists_the_new_key_only_with_its_proof_from_the_log(rotation: Rotation) -> None:
    def listed() -> Document | None:
        answer = rotation.http.get(f"/api/recipients/{rotation.factory}")
        assert answer.status_code == 200, answer.text
        keys: Document = answer.json()
        return keys if rotation.new_key_id in keys["transparency"]["proofs"] else None

    keys = wait_for(listed, 60, "the new key's proof in intake's recipients")
    assert rotation.new_key_id in keys["content"]
    assert rotation.old_key_id not in keys["content"]
    assert rotation.old_key_id not in keys["transparency"]["proofs"]
    assert rotation.new_key_id not in keys["identity"], "a buyer never receives identity"


def test_a_report_sealed_to_the_revoked_key_is_refused_and_stores_nothing(
    rotation: Rotation,
) -> None:
    current = current_recipients(rotation.http, rotation.factory)
    old_public = load_public_key(Path(f"{rotation.old_key}.pub"))
    to_old = {k: v for k, v in current.items() if k != rotation.new_key_id}
    to_old[rotation.old_key_id] = old_public
    for content_to in (to_old, current | {rotation.old_key_id: old_public}):
        body = sealed_report(rotation.http, rotation.factory, content_to, "sealed to the old key")
        response = rotation.http.post("/api/reports", json=body)
        assert (response.status_code, response.json()["code"]) == (422, "wrong-recipients")
        assert rotation.mongo.intake_cases.find_one({"_id": body["case_id"]}) is None


def test_new_reports_reach_the_buyer_sealed_to_the_new_key_and_old_ones_open_with_the_old(
    rotation: Rotation,
) -> None:
    text = f"overtime unpaid after the rotation {uuid.uuid4().hex[:8]}"
    case_id = submit(
        rotation.http, rotation.factory, current_recipients(rotation.http, rotation.factory), text
    )
    token = rotation.token(rotation.buyer_user)
    item = wait_for(lambda: item_of(rotation.settings, token, case_id), 60, "the new case")
    assert rotation.new_key_id in item["content"]["recipients"]
    assert rotation.old_key_id not in item["content"]["recipients"]
    assert opened(item, rotation.new_key) == text
    with pytest.raises(NotARecipient):
        opened(item, rotation.old_key)

    [(before_case, before_text)] = rotation.before.items()
    old_item = item_of(rotation.settings, token, before_case)
    assert old_item is not None, "what the buyer received before the rotation is still there"
    assert opened(old_item, rotation.old_key) == before_text
    with pytest.raises(NotARecipient):
        opened(old_item, rotation.new_key)


def test_the_revocation_is_on_its_topic_and_in_the_audit_log(
    rotation: Rotation, tmp_path: Path
) -> None:
    settings = rotation.settings

    def on_topic(event_type: str, subject: str) -> Document | None:
        for raw in asyncio.run(records_on(settings, topic_for(event_type))):
            try:
                event = parse_event(raw)
            except EventError:
                continue  # other tests' poison records
            if event.subject == subject:
                return event.data
        return None

    revoked = {"key_id": rotation.old_key_id, "org": rotation.buyer, "org_kind": "buyer"}
    assert wait_for(lambda: on_topic(EventType.KEY_REVOKED, rotation.old_key_id), 60) == revoked
    registered = wait_for(lambda: on_topic(EventType.KEY_REGISTERED, rotation.new_key_id), 60)
    assert (registered["org"], registered["org_kind"]) == (rotation.buyer, "buyer")

    entry = wait_for(
        lambda: logged(settings, rotation.old_key_id, EventType.KEY_REVOKED),
        60,
        "the key.revoked entry under a checkpoint",
    )
    assert {k: entry["entry"][k] for k in revoked} == revoked
    vkey = httpx.get(f"{settings.audit_url}/vkey", timeout=30, verify=tls()).text.strip()
    verdict = hotline_json("audit", "verify", "--vkey", vkey, "--state", str(tmp_path / "s.json"))
    assert verdict["policy"]["revoked_keys"] >= 1
    assert verdict["policy"]["sealed_envelopes"] > 0
    assert [
        f for f in verdict["failures"] if f["rule"] == "no-envelope-sealed-to-a-revoked-key"
    ] == []


def test_each_refusal_of_a_rotation_has_its_status_and_changes_nothing(
    rotation: Rotation,
) -> None:
    url = f"{rotation.settings.triage_url}/api/admin/buyers/{rotation.buyer}/keys"
    admin = rotation.token("admin")
    fresh_party = Party.new()
    fresh = fresh_party.public_b64
    old_public = b64encode(load_public_key(Path(f"{rotation.old_key}.pub")))
    new_public = b64encode(load_public_key(Path(f"{rotation.new_key}.pub")))
    refusals: list[tuple[str, str | None, Any, int, str]] = [
        ("the buyer itself", rotation.token(rotation.buyer_user), {"public_key": fresh}, 403, ""),
        ("an operator", rotation.token("operator"), {"public_key": fresh}, 403, ""),
        ("no token", None, {"public_key": fresh}, 401, ""),
        ("not a key", admin, {"public_key": "AAAA"}, 422, "public key: "),
        ("no key", admin, {}, 422, "Field required"),
        ("another field", admin, {"public_key": fresh, "org": "x"}, 422, "Extra inputs"),
        ("the current key", admin, {"public_key": new_public}, 409, "current key"),
        ("the revoked key", admin, {"public_key": old_public}, 409, "revoked key"),
    ]
    before = rotation.buyer_doc()
    for why, token, body, status, explanation in refusals:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(url, json=body, headers=headers, timeout=30, verify=tls())
        assert response.status_code == status, (why, response.text)
        assert explanation in str(response.json()["detail"]), (why, response.text)
    unknown = httpx.post(
        f"{rotation.settings.triage_url}/api/admin/buyers/nobody-{uuid.uuid4().hex[:6]}/keys",
        json={"public_key": fresh},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
        verify=tls(),
    )
    assert unknown.status_code == 404 and "no buyer nobody-" in unknown.json()["detail"]
    assert rotation.buyer_doc() == before
    assert rotation.mongo.buyers.find_one({"key_id": fresh_party.key_id}) is None


def test_the_admin_api_answers_a_rotation_with_the_keys_as_stored(rotation: Rotation) -> None:
    """A second buyer of this module, rotated through the API: the answer is what is stored."""
    admin = AdminApi(rotation.settings)
    buyer, first, second = f"rotate-api-{uuid.uuid4().hex[:8]}", Party.new(), Party.new()
    admin.created(
        "buyers", {"buyer_id": buyer, "name": "Api Brand", "public_key": first.public_b64}
    )
    answer = admin.created(f"buyers/{buyer}/keys", {"public_key": second.public_b64})
    assert answer == {"buyer_id": buyer, "key_id": second.key_id, "revoked_key_ids": [first.key_id]}
    third = Party.new()
    answer = admin.created(f"buyers/{buyer}/keys", {"public_key": third.public_b64})
    assert answer["revoked_key_ids"] == [first.key_id, second.key_id]


def test_the_schedule_is_set_by_the_cli_and_the_api(rotation: Rotation) -> None:
    settings, buyer = rotation.settings, rotation.buyer
    assert rotation.buyer_doc()["schedule"] == "daily"
    admin = rotation.token("admin")
    shown = hotline("admin", "buyer", "schedule", buyer, "weekly", token=admin)
    assert shown.stdout.strip() == f"buyer {buyer}: digest weekly"
    assert rotation.buyer_doc()["schedule"] == "weekly"

    url = f"{settings.triage_url}/api/admin/buyers/{buyer}/schedule"
    as_admin = {"Authorization": f"Bearer {admin}"}
    answer = httpx.put(url, json={"schedule": "daily"}, headers=as_admin, timeout=30, verify=tls())
    assert (answer.status_code, answer.json()) == (200, {"buyer_id": buyer, "schedule": "daily"})
    assert rotation.buyer_doc()["schedule"] == "daily"

    before = rotation.buyer_doc()
    refusals: list[tuple[str, dict[str, str], Any, int, str]] = [
        ("a buyer", _bearer(rotation.token(rotation.buyer_user)), {"schedule": "weekly"}, 403, ""),
        ("an operator", _bearer(rotation.token("operator")), {"schedule": "weekly"}, 403, ""),
        ("no token", {}, {"schedule": "weekly"}, 401, ""),
        ("hourly", as_admin, {"schedule": "hourly"}, 422, "schedule must be one of daily, weekly"),
        ("no schedule", as_admin, {}, 422, "Field required"),
    ]
    for why, headers, body, status, explanation in refusals:
        response = httpx.put(url, json=body, headers=headers, timeout=30, verify=tls())
        assert response.status_code == status, (why, response.text)
        assert explanation in str(response.json()["detail"]), (why, response.text)
    unknown = httpx.put(
        f"{settings.triage_url}/api/admin/buyers/nobody-{uuid.uuid4().hex[:6]}/schedule",
        json={"schedule": "weekly"},
        headers=as_admin,
        timeout=30,
        verify=tls(),
    )
    assert unknown.status_code == 404 and "no buyer nobody-" in unknown.json()["detail"]
    wrong = hotline("admin", "buyer", "schedule", buyer, "hourly", token=admin, check=False)
    assert wrong.returncode == 2 and "'hourly' is not one of 'daily', 'weekly'" in wrong.stderr
    assert rotation.buyer_doc() == before


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
