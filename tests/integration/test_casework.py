"""Case work against the running services (issue 18, part 1): the severity rules as versioned
data, claiming a case, moving it through the state machine, notes for the operators only,
and the case's history, over real HTTP with real Keycloak tokens, and what reaches Kafka.

Cases are submitted with `hotline submit`; the receipt the test keeps derives the worker's
reply key, so a note wrongly sealed to the worker can be tried. The rule table's effect on
new ratings only is checked on `rate()` with a table file of the test's own (the running
triage reads the packaged one, which a test must not edit under other tests' feet).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.envelope import open_envelope, seal_envelope
from hotline.shared.events import EventError, EventType, parse_event, topic_for
from hotline.shared.keys import b64decode_strict, key_id, load_private_key, public_key_of
from hotline.shared.messages import message_routing
from hotline.shared.receipt import DerivedReceipt, derive_receipt
from hotline.shared.roles import Role
from hotline.shared.store import Databases
from hotline.triage.contract import STATUSES, TRANSITIONS
from hotline.triage.rules import RULES_FILE, current_rules, load_rules, rate
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import wait_for

Document = dict[str, Any]
STATUS_CHANGES = topic_for(EventType.CASE_STATUS_CHANGED)
TRIAGED = topic_for(EventType.CASE_TRIAGED)
WAIT = 60.0
RECEIVED = datetime(2026, 3, 14, 9, tzinfo=UTC)


@dataclass
class World:
    settings: Settings
    mongo: Databases[Collection[Document]]
    factory: str
    operator_key_file: Path
    other_operator: str  # user names (= passwords)
    buyer: str

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def call(self, method: str, path: str, user: str | None, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        url = f"{self.settings.triage_url}{path}"
        return httpx.request(method, url, json=body, headers=headers, timeout=60, verify=tls())

    def subject(self, user: str) -> str:
        """The Keycloak subject of `user`, as the services read it from the token."""
        payload = self.token(user).split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])


@dataclass
class Case:
    case_id: str
    worker: DerivedReceipt


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    key_file = tmp_path_factory.mktemp("keys") / "operator.key"
    hotline("keys", "generate", "--out", str(key_file))
    operator_public = (key_file.parent / "operator.key.pub").read_text().splitlines()[1]
    admin.created("operator-keys", {"public_key": operator_public})
    factory = unique_factory_code()
    admin.created("factories", {"code": factory, "name": "Heron Toys", "country": "CN"})
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(
            settings=settings,
            mongo=Databases(client, settings.mongo_db),
            factory=factory,
            operator_key_file=key_file,
            other_operator=add_user(settings, Role.OPERATOR),
            buyer=add_user(settings, Role.BUYER, "b-casework"),
        )


def new_case(world: World, category: str = "wages") -> Case:
    submitted = hotline_json(
        "submit", "--factory", world.factory, "--category", category, "--text", "unpaid"
    )
    case_id = submitted["case_id"]
    wait_for(
        lambda: world.mongo.triage_cases.find_one({"_id": case_id}),
        timeout=WAIT,
        what="the case at triage",
    )
    return Case(case_id, derive_receipt(submitted["receipt"]))


@pytest.fixture
def case(world: World) -> Case:
    return new_case(world)


def move(world: World, case: Case, status: str, reason: str | None = "done") -> httpx.Response:
    body = {"status": status, "reason": reason}
    return world.call("POST", f"/api/cases/{case.case_id}/status", "operator", body)


def status_of(world: World, case: Case) -> str:
    found = world.mongo.triage_cases.find_one({"_id": case.case_id}, {"status": 1})
    assert found is not None
    return str(found["status"])


def history(world: World, case: Case) -> list[Document]:
    found = world.call("GET", f"/api/cases/{case.case_id}/history", "operator")
    assert found.status_code == 200, found.text
    entries: list[Document] = found.json()["entries"]
    return entries


def published_statuses(world: World, case: Case, count: int) -> list[str]:
    """The case's `case.status-changed` events on the topic, once there are `count`."""

    def found() -> list[str] | None:
        statuses = []
        for raw in asyncio.run(records_on(world.settings, STATUS_CHANGES)):
            try:
                event = parse_event(raw)
            except EventError:
                continue
            if event.subject == case.case_id:
                statuses.append(event.data["status"])
        return statuses if len(statuses) >= count else None

    return wait_for(found, timeout=WAIT, what=f"{count} status changes on {STATUS_CHANGES}")


def assert_refused_moves(world: World, case: Case, current: str) -> None:
    """Every move the machine does not allow from `current` is a 409; nothing changes."""
    for target in STATUSES:
        if target in TRANSITIONS[current]:
            continue
        refused = move(world, case, target)
        assert refused.status_code == 409, (current, target, refused.text)
        assert current in refused.json()["detail"]
        assert status_of(world, case) == current


# --- the rule table ------------------------------------------------------------------------


def test_a_case_records_the_rule_version_that_rated_it(world: World, case: Case) -> None:
    version = current_rules().version
    stored = world.mongo.triage_cases.find_one({"_id": case.case_id})
    assert stored is not None
    assert (stored["severity"], stored["rule_version"]) == ("high", version)

    def triaged() -> Document | None:
        for raw in asyncio.run(records_on(world.settings, TRIAGED)):
            try:
                event = parse_event(raw)
            except EventError:
                continue
            if event.subject == case.case_id:
                return event.data
        return None

    event = wait_for(triaged, timeout=WAIT, what="the case.triaged event")
    assert event["rule_version"] == version


def test_confiscated_id_is_critical_and_escalated(world: World) -> None:
    abuse = new_case(world, "abuse")
    stored = world.mongo.triage_cases.find_one({"_id": abuse.case_id})
    assert stored is not None
    assert (stored["severity"], stored["escalated"]) == ("critical", True)


def _table(tmp_path: Path, version: str, **categories: str) -> Path:
    data = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    data["version"] = version
    data["categories"].update(categories)
    path = tmp_path / "severity-rules.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_changed_rules_file_changes_new_ratings_only(tmp_path: Path) -> None:
    path = _table(tmp_path, "test-1")
    before = rate(["hours"], False, RECEIVED, current_rules(path))
    assert (before.severity, before.rule_version) == ("normal", "test-1")

    path = _table(tmp_path, "test-2", hours="high")
    os.utime(path, ns=(1, 10**18))  # a new modification time, however fast the test is
    after = rate(["hours"], False, RECEIVED, current_rules(path))
    assert (after.severity, after.rule_version) == ("high", "test-2")
    assert after.due == RECEIVED + timedelta(hours=24)
    # The first rating is what it was: a case stores it and is never rated again.
    assert (before.severity, before.rule_version, before.due) == (
        "normal",
        "test-1",
        RECEIVED + timedelta(hours=72),
    )


def test_a_rules_file_naming_an_unknown_category_is_refused(tmp_path: Path) -> None:
    from hotline.triage.rules import RulesError

    with pytest.raises(RulesError, match="not taxonomy codes: strike"):
        load_rules(_table(tmp_path, "bad", strike="high"))


# --- the state machine ---------------------------------------------------------------------


def test_every_legal_move_to_resolved_and_every_illegal_one_refused(
    world: World, case: Case
) -> None:
    path = ["acknowledged", "investigating", "remediation", "resolved"]
    current = "received"
    for target in path:
        assert_refused_moves(world, case, current)
        moved = move(world, case, target, reason="fixed" if target == "resolved" else None)
        assert moved.status_code == 200, moved.text
        assert moved.json() == {"case_id": case.case_id, "status": target}
        assert status_of(world, case) == target
        current = target
    assert_refused_moves(world, case, "resolved")
    assert published_statuses(world, case, len(path)) == path

    entries = history(world, case)
    assert [(e["action"], e["previous"], e["status"]) for e in entries] == [
        ("status", before, after) for before, after in zip(["received", *path], path, strict=False)
    ]
    assert entries[-1]["reason"] == "fixed"
    assert {e["role"] for e in entries} == {Role.OPERATOR}
    assert {e["subject"] for e in entries} == {world.subject("operator")}
    assert all(e["hour"].endswith(":00:00Z") for e in entries), "hours, never minutes"
    stored = world.mongo.triage_cases.find_one({"_id": case.case_id}, {"acknowledged": 1})
    assert stored is not None and stored["acknowledged"] == entries[0]["hour"]


@pytest.mark.parametrize("at", ["received", "acknowledged", "investigating", "remediation"])
def test_a_case_is_closed_from_any_open_status_with_a_reason(world: World, at: str) -> None:
    case = new_case(world)
    steps = STATUSES[1 : STATUSES.index(at) + 1]
    for step in steps:
        assert move(world, case, step).status_code == 200
    no_reason = move(world, case, "closed", reason=None)
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    blank = move(world, case, "closed", reason="   ")
    assert blank.status_code == 422
    assert status_of(world, case) == at

    closed = move(world, case, "closed", reason="the worker withdrew")
    assert closed.status_code == 200, closed.text
    assert status_of(world, case) == "closed"
    assert_refused_moves(world, case, "closed")
    assert published_statuses(world, case, len(steps) + 1)[-1] == "closed"
    assert history(world, case)[-1]["reason"] == "the worker withdrew"


def test_resolving_needs_a_reason(world: World, case: Case) -> None:
    for step in ("acknowledged", "investigating", "remediation"):
        assert move(world, case, step).status_code == 200
    refused = move(world, case, "resolved", reason=None)
    assert refused.status_code == 422
    assert status_of(world, case) == "remediation"


def test_bad_status_requests_are_refused_and_change_nothing(world: World, case: Case) -> None:
    path = f"/api/cases/{case.case_id}/status"
    for body in ({"status": "reopened"}, {}, {"status": "closed", "reason": "x" * 501}):
        assert world.call("POST", path, "operator", body).status_code == 422
    assert status_of(world, case) == "received"
    unknown = world.call("POST", f"/api/cases/{uuid.uuid4()}/status", "operator", {"status": "x"})
    assert unknown.status_code == 422
    missing = {"status": "acknowledged"}
    assert (
        world.call("POST", f"/api/cases/{uuid.uuid4()}/status", "operator", missing).status_code
        == 404
    )


# --- claims ---------------------------------------------------------------------------------


def test_a_claim_conflict_is_a_409_unless_forced(world: World, case: Case) -> None:
    path = f"/api/cases/{case.case_id}/claim"
    mine = world.call("POST", path, "operator")
    assert mine.status_code == 200, mine.text
    assert mine.json() == {"case_id": case.case_id, "assignee": world.subject("operator")}
    again = world.call("POST", path, "operator", {})
    assert again.status_code == 200, "claiming one's own case again changes nothing"

    taken = world.call("POST", path, world.other_operator, {})
    assert taken.status_code == 409 and "force" in taken.json()["detail"]
    stored = world.mongo.triage_cases.find_one({"_id": case.case_id}, {"assignee": 1})
    assert stored is not None and stored["assignee"] == world.subject("operator")

    lax = world.call("POST", path, world.other_operator, {"force": "yes"})
    assert lax.status_code == 422, "force is true or false"
    forced = world.call("POST", path, world.other_operator, {"force": True})
    assert forced.status_code == 200
    assert forced.json()["assignee"] == world.subject(world.other_operator)

    claims = [e for e in history(world, case) if e["action"] == "claim"]
    assert [(e["subject"], e["previous"]) for e in claims] == [
        (world.subject("operator"), None),
        (world.subject(world.other_operator), world.subject("operator")),
    ]


def test_a_final_case_is_not_claimed(world: World, case: Case) -> None:
    path = f"/api/cases/{case.case_id}/claim"
    assert world.call("POST", path, "operator", {}).status_code == 200
    closed = {"status": "closed", "reason": "duplicate of another report"}
    moved = world.call("POST", f"/api/cases/{case.case_id}/status", "operator", closed)
    assert moved.status_code == 200, moved.text
    before = history(world, case)
    again = world.call("POST", path, "operator", {})
    assert again.status_code == 200, "claiming one's own case again changes nothing"
    taken = world.call("POST", path, world.other_operator, {"force": True})
    assert taken.status_code == 409 and "final" in taken.json()["detail"]
    stored = world.mongo.triage_cases.find_one({"_id": case.case_id}, {"assignee": 1})
    assert stored is not None and stored["assignee"] == world.subject("operator")
    assert history(world, case) == before


def test_the_cli_claims_moves_and_notes_a_case(world: World, case: Case) -> None:
    token = world.token("operator")
    claimed = hotline_json("cases", "claim", case.case_id, token=token)
    assert claimed["assignee"] == world.subject("operator")
    hotline_json("cases", "status", case.case_id, "acknowledged", token=token)
    refused = hotline(
        "cases", "status", case.case_id, "resolved", "--reason", "x", token=token, check=False
    )
    assert refused.returncode != 0 and "cannot become resolved" in refused.stderr
    assert status_of(world, case) == "acknowledged"
    noted = hotline_json("cases", "note", case.case_id, "--text", "called the auditor", token=token)
    messages = hotline_json(
        "cases", "messages", case.case_id, "--key", str(world.operator_key_file), token=token
    )
    [shown] = [m for m in messages if m["message_id"] == noted["message_id"]]
    assert (shown["kind"], shown["text"]) == ("note", "called the auditor")


# --- notes ---------------------------------------------------------------------------------


def note_keys(world: World, case: Case) -> dict[str, bytes]:
    found = world.call("GET", f"/api/cases/{case.case_id}/note-keys", "operator")
    assert found.status_code == 200, found.text
    return {kid: b64decode_strict(pub) for kid, pub in found.json()["keys"].items()}


def note(case: Case, text: str, recipients: dict[str, bytes]) -> Document:
    message_id = str(uuid.uuid4())
    envelope = seal_envelope(
        text.encode(),
        case_id=case.case_id,
        kind="content",
        routing=message_routing(message_id, "note"),
        recipients=recipients,
    )
    return {"message_id": message_id, "kind": "note", "envelope": envelope.model_dump()}


def test_a_note_sealed_to_the_operator_keys_is_kept_for_the_operators(
    world: World, case: Case
) -> None:
    keys = note_keys(world, case)
    own = load_private_key(world.operator_key_file)
    assert key_id(public_key_of(own)) in keys, "the module's operator key is registered"
    body = note(case, "the worker prefers calls after 6pm", keys)
    posted = world.call("POST", f"/api/cases/{case.case_id}/messages", "operator", body)
    assert posted.status_code == 201, posted.text

    listed = world.call("GET", f"/api/cases/{case.case_id}/messages", "operator").json()
    [found] = [m for m in listed["messages"] if m["message_id"] == body["message_id"]]
    assert found["kind"] == "note" and found["envelope"] is not None
    text = open_envelope(
        found["envelope"],
        private_key=own,
        case_id=case.case_id,
        routing=message_routing(body["message_id"], "note"),
    )
    assert text == b"the worker prefers calls after 6pm"


def test_a_note_sealed_to_anything_but_exactly_the_operator_keys_is_refused(
    world: World, case: Case
) -> None:
    keys = note_keys(world, case)
    reply = {key_id(case.worker.reply_public): case.worker.reply_public}
    one_less = dict(list(keys.items())[1:])
    for recipients in (reply, {**keys, **reply}, one_less):
        if not recipients:
            continue
        body = note(case, "for the operators", recipients)
        refused = world.call("POST", f"/api/cases/{case.case_id}/messages", "operator", body)
        assert refused.status_code == 422, refused.text
        assert "operator keys" in refused.json()["detail"]
    listed = world.call("GET", f"/api/cases/{case.case_id}/messages", "operator").json()
    assert [m for m in listed["messages"] if m["kind"] == "note"] == []


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "claim", {}),
        ("POST", "status", {"status": "acknowledged"}),
        ("GET", "history", None),
        ("GET", "note-keys", None),
    ],
)
def test_only_an_operator_does_case_work(
    world: World, case: Case, method: str, suffix: str, body: Document | None
) -> None:
    path = f"/api/cases/{case.case_id}/{suffix}"
    assert world.call(method, path, None, body).status_code == 401
    assert world.call(method, path, world.buyer, body).status_code == 403
    stored = world.mongo.triage_cases.find_one({"_id": case.case_id}, {"status": 1, "assignee": 1})
    assert stored is not None
    assert (stored["status"], stored.get("assignee")) == ("received", None)
