"""The conversation of a case against the running services (issue 17): the operator's
messages to the worker (triage), a buyer's questions (notify), the operator's decision on
them, over real HTTP with real Keycloak tokens, and what reaches Kafka.

Each case is submitted with `hotline submit`, whose receipt the test keeps: the reply key it
derives is the worker's, so the test opens what was sealed to the worker as the status page
would. Refusals are checked on what a user would notice: the answer, the conversation the
operator reads, and the topic, where a message accepted after the refused one arrives and
the refused one never does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope, envelope_hash, open_envelope, seal_envelope
from hotline.shared.events import Event, EventError, EventType, parse_event, topic_for
from hotline.shared.keys import b64decode_strict, key_id, load_private_key
from hotline.shared.messages import decision_id, message_routing
from hotline.shared.pow import solve
from hotline.shared.receipt import DerivedReceipt, derive_receipt
from hotline.shared.roles import Role
from hotline.shared.store import Databases
from tests.support.audit import publish_events
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import unless_busy, wait_for

Document = dict[str, Any]
MESSAGES = topic_for(EventType.MESSAGE_POSTED)
DISCLOSURES = topic_for(EventType.ENVELOPE_DISCLOSED)
STATUS_CHANGES = topic_for(EventType.CASE_STATUS_CHANGED)
WAIT = 60.0


@dataclass
class World:
    """A factory with a linked buyer (a user of its own org), a buyer of another factory,
    and an operator key file this module registered."""

    settings: Settings
    mongo: Databases[Collection[Document]]
    factory: str
    operator_key_file: Path
    buyer: str  # user names (= passwords)
    buyer_org: str
    buyer_party: Party
    other_buyer: str

    @property
    def operator_private(self) -> bytes:
        return load_private_key(self.operator_key_file)

    def token(self, user: str) -> str:
        return password_token(self.settings, user, user)

    def call(
        self, service: str, method: str, path: str, user: str | None, body: Any = None
    ) -> httpx.Response:
        base = {"triage": self.settings.triage_url, "notify": self.settings.notify_url}[service]
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.request(
            method, f"{base}{path}", json=body, headers=headers, timeout=60, verify=tls()
        )

    def operator_keys(self) -> dict[str, bytes]:
        """Every operator key of the registry, as notify lists them to a buyer."""
        listed = self.call("notify", "GET", "/api/operator-keys", self.buyer)
        assert listed.status_code == 200, listed.text
        return {kid: b64decode_strict(pub) for kid, pub in listed.json()["keys"].items()}


@dataclass
class Case:
    case_id: str
    worker: DerivedReceipt  # what the worker's receipt derives: the reply key pair

    @property
    def reply_key_id(self) -> str:
        return key_id(self.worker.reply_public)

    @property
    def reply_recipients(self) -> dict[str, bytes]:
        return {self.reply_key_id: self.worker.reply_public}


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    key_file = tmp_path_factory.mktemp("keys") / "operator.key"
    hotline("keys", "generate", "--out", str(key_file))
    operator_public = (key_file.parent / "operator.key.pub").read_text().splitlines()[1]
    admin.created("operator-keys", {"public_key": operator_public})
    factory, other_factory = unique_factory_code(), unique_factory_code()
    for code in (factory, other_factory):
        admin.created("factories", {"code": code, "name": "Heron Toys", "country": "CN"})
    buyer_org, other_org = unique_buyer_id(), unique_buyer_id()
    buyer_party = Party.new()
    for org, party, at in (
        (buyer_org, buyer_party, factory),
        (other_org, Party.new(), other_factory),
    ):
        admin.created(
            "buyers", {"buyer_id": org, "name": org.title(), "public_key": party.public_b64}
        )
        admin.created("links", {"buyer_id": org, "factory": at})
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(
            settings=settings,
            mongo=Databases(client, settings.mongo_db),
            factory=factory,
            operator_key_file=key_file,
            buyer=add_user(settings, Role.BUYER, buyer_org),
            buyer_org=buyer_org,
            buyer_party=buyer_party,
            other_buyer=add_user(settings, Role.BUYER, other_org),
        )


def new_case(world: World) -> Case:
    """A report submitted with the CLI, once triage and the buyer's digest have it."""
    submitted = hotline_json(
        "submit", "--factory", world.factory, "--category", "wages", "--text", "unpaid since May"
    )
    case_id = submitted["case_id"]
    wait_for(
        lambda: world.mongo.triage_cases.find_one({"_id": case_id}),
        timeout=WAIT,
        what="the case at triage",
    )
    wait_for(
        lambda: world.mongo.notify_items.find_one({"_id": f"{world.buyer_org}:{case_id}"}),
        timeout=WAIT,
        what="the case in the buyer's digest",
    )
    return Case(case_id, derive_receipt(submitted["receipt"]))


@pytest.fixture
def case(world: World) -> Case:
    return new_case(world)


def sealed(
    text: str, case_id: str, message_id: str, kind: str, recipients: dict[str, bytes]
) -> Document:
    envelope = seal_envelope(
        text.encode(),
        case_id=case_id,
        kind="content",
        routing=message_routing(message_id, kind),
        recipients=recipients,
    )
    return envelope.model_dump()


def operator_message(
    case: Case, kind: str, text: str, recipients: dict[str, bytes] | None = None, **fields: Any
) -> Document:
    """A message to the worker as an operator's client builds it (sealed to the reply key)."""
    message_id = fields.pop("message_id", str(uuid.uuid4()))
    to = case.reply_recipients if recipients is None else recipients
    envelope = sealed(text, fields.pop("envelope_case", case.case_id), message_id, kind, to)
    return {"message_id": message_id, "kind": kind, "envelope": envelope, **fields}


def post(world: World, case: Case, body: Document, user: str = "operator") -> httpx.Response:
    return world.call("triage", "POST", f"/api/cases/{case.case_id}/messages", user, body)


def ask(world: World, case: Case, body: Document, user: str | None = None) -> httpx.Response:
    path = f"/api/cases/{case.case_id}/questions"
    return world.call("notify", "POST", path, world.buyer if user is None else user, body)


def question(world: World, case: Case, text: str, message_id: str | None = None) -> Document:
    message_id = message_id or str(uuid.uuid4())
    envelope = sealed(text, case.case_id, message_id, "question", world.operator_keys())
    return {"message_id": message_id, "kind": "question", "envelope": envelope}


def worker_answers(world: World, case: Case, message_id: str, text: str) -> httpx.Response:
    """The worker's answer as the status page sends it to intake: sealed to the operators."""
    envelope = sealed(text, case.case_id, message_id, "answer", world.operator_keys())
    intake = world.settings.intake_url

    def send() -> httpx.Response:
        issued = httpx.get(f"{intake}/api/challenge", verify=tls()).json()
        solved = {
            "challenge": issued["challenge"],
            "solution": solve(issued["challenge"], issued["difficulty"]),
        }
        body = {
            "lookup_token": case.worker.lookup_token.hex(),
            "message_id": message_id,
            "envelope": envelope,
            "pow": solved,
        }
        return httpx.post(f"{intake}/api/answers", json=body, timeout=60, verify=tls())

    return unless_busy(send, what="the answer")


def conversation(world: World, case: Case) -> list[Document]:
    found = world.call("triage", "GET", f"/api/cases/{case.case_id}/messages", "operator")
    assert found.status_code == 200, found.text
    body: Document = found.json()
    assert body["case_id"] == case.case_id
    messages: list[Document] = body["messages"]
    return messages


def listed_at_triage(world: World, case: Case, message_id: str, what: str) -> list[Document]:
    """The case's messages under `message_id`, once triage lists one."""
    return wait_for(
        lambda: [m for m in conversation(world, case) if m["message_id"] == message_id],
        timeout=WAIT,
        what=what,
    )


def events_about(world: World, topic: str, case: Case) -> list[Event]:
    """The events about the case on `topic`, read from its beginning as any client can."""
    events = []
    for raw in asyncio.run(records_on(world.settings, topic)):
        try:
            event = parse_event(raw)
        except EventError:
            continue  # other tests' poison records
        if event.subject == case.case_id:
            events.append(event)
    return events


def posted_event(world: World, case: Case, message_id: str) -> Event:
    def found() -> Event | None:
        matching = [
            event
            for event in events_about(world, MESSAGES, case)
            if event.data["message_id"] == message_id
        ]
        assert len(matching) <= 1, "one event per message"
        return matching[0] if matching else None

    return wait_for(found, timeout=WAIT, what=f"message {message_id} on {MESSAGES}")


def opened_by_worker(case: Case, message_id: str, kind: str, envelope: Document) -> str:
    return open_envelope(
        envelope,
        private_key=case.worker.reply_private,
        case_id=case.case_id,
        routing=message_routing(message_id, kind),
    ).decode()


def settled(world: World, case: Case) -> Document:
    """The case at triage once every event it wrote is published."""
    return wait_for(
        lambda: world.mongo.triage_cases.find_one({"_id": case.case_id, "outbox_pending": 0}),
        timeout=WAIT,
        what="the case's events published",
    )


# --- the operator's messages to the worker ------------------------------------------------


def test_the_reply_key_is_the_one_the_receipt_derives(world: World, case: Case) -> None:
    found = world.call("triage", "GET", f"/api/cases/{case.case_id}/reply-key", "operator")
    assert found.status_code == 200, found.text
    assert b64decode_strict(found.json()["reply_key"]) == case.worker.reply_public
    unknown = world.call("triage", "GET", f"/api/cases/{uuid.uuid4()}/reply-key", "operator")
    assert unknown.status_code == 404


def test_a_reply_sealed_to_the_reply_key_is_posted_for_that_key_only(
    world: World, case: Case
) -> None:
    body = operator_message(case, "reply", "we are calling the factory this week")
    answer = post(world, case, body)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"message_id": body["message_id"]}

    event = posted_event(world, case, body["message_id"])
    assert event.data["kind"] == "reply" and event.data["author_role"] == Role.OPERATOR
    assert event.data["in_reply_to"] is None and event.data["attachments"] == []
    assert list(event.data["envelope"]["recipients"]) == [case.reply_key_id]
    text = opened_by_worker(case, body["message_id"], "reply", event.data["envelope"])
    assert text == "we are calling the factory this week"

    [listed] = [m for m in conversation(world, case) if m["message_id"] == body["message_id"]]
    assert listed["envelope"] is None, "a message to the worker is not handed out again"
    assert listed["envelope_hash"] == envelope_hash(Envelope.model_validate(body["envelope"]))
    assert (listed["kind"], listed["author_role"], listed["decision"]) == (
        "reply",
        Role.OPERATOR,
        None,
    )
    assert listed["day"] == event.time[:10]


WRONG_RECIPIENTS: dict[str, Callable[[World, Case], dict[str, bytes]]] = {
    "a buyer's key": lambda world, case: {world.buyer_party.key_id: world.buyer_party.public},
    "a factory's key": lambda world, case: {(p := Party.new()).key_id: p.public},
    "the reply key and an operator key": lambda world, case: {
        **case.reply_recipients,
        **world.operator_keys(),
    },
}


@pytest.mark.parametrize("to", list(WRONG_RECIPIENTS))
def test_a_reply_sealed_to_any_other_key_is_refused_and_never_published(
    world: World, case: Case, to: str
) -> None:
    refused = operator_message(case, "reply", "hello", WRONG_RECIPIENTS[to](world, case))
    answer = post(world, case, refused)
    assert answer.status_code == 422, answer.text
    assert "reply key" in answer.json()["detail"]

    accepted = operator_message(case, "reply", "hello")
    assert post(world, case, accepted).status_code == 201
    posted_event(world, case, accepted["message_id"])
    on_topic = {event.data["message_id"] for event in events_about(world, MESSAGES, case)}
    assert refused["message_id"] not in on_topic
    assert refused["message_id"] not in {m["message_id"] for m in conversation(world, case)}


BAD_MESSAGES: dict[str, tuple[Callable[[Case], Document], int]] = {
    "an envelope of another case": (
        lambda case: operator_message(case, "reply", "hi", envelope_case=str(uuid.uuid4())),
        422,
    ),
    "a kind an operator does not write": (
        lambda case: operator_message(case, "answer", "hi"),
        422,
    ),
    "a forward of a question the case does not have": (
        lambda case: operator_message(
            case,
            "forward",
            "hi",
            message_id=decision_id(question_id := str(uuid.uuid4())),
            in_reply_to=question_id,
        ),
        404,
    ),
    "a decline without its decision id": (
        lambda case: {
            "message_id": str(uuid.uuid4()),
            "kind": "decline",
            "in_reply_to": str(uuid.uuid4()),
        },
        422,
    ),
    "a message id that is not a UUID": (
        lambda case: operator_message(case, "reply", "hi", message_id="1; drop"),
        422,
    ),
}


@pytest.mark.parametrize("bad", list(BAD_MESSAGES))
def test_a_bad_message_gets_a_clear_4xx_and_nothing_is_written(
    world: World, case: Case, bad: str
) -> None:
    build, expected = BAD_MESSAGES[bad]
    body = build(case)
    answer = post(world, case, body)
    assert answer.status_code == expected, answer.text
    assert world.mongo.triage_messages.count_documents({"case_id": case.case_id}) == 0
    assert conversation(world, case) == []


def test_a_message_to_an_unknown_case_is_404(world: World, case: Case) -> None:
    body = operator_message(case, "reply", "hi")
    answer = world.call("triage", "POST", f"/api/cases/{uuid.uuid4()}/messages", "operator", body)
    assert answer.status_code == 404
    listed = world.call("triage", "GET", f"/api/cases/{uuid.uuid4()}/messages", "operator")
    assert listed.status_code == 404


def test_an_acknowledgement_acknowledges_the_case_once(world: World, case: Case) -> None:
    first = operator_message(case, "acknowledgement", "we have your report")
    assert post(world, case, first).status_code == 201

    def status_in_list() -> str | None:
        path = f"/api/cases?factory={world.factory}&limit=200"
        found = world.call("triage", "GET", path, "operator")
        [summary] = [c for c in found.json()["cases"] if c["case_id"] == case.case_id]
        return summary["status"] if summary["status"] != "received" else None

    assert wait_for(status_in_list, timeout=WAIT, what="the case acknowledged") == "acknowledged"
    acknowledged_at = posted_event(world, case, first["message_id"]).time

    second = operator_message(case, "acknowledgement", "we have your report (again)")
    assert post(world, case, second).status_code == 201
    feedback = operator_message(case, "feedback", "the wages were paid")
    assert post(world, case, feedback).status_code == 201
    # Triage applies a case's messages in order: once the feedback is recorded, so is the
    # second acknowledgement, and whatever it did is published once the outbox is empty.
    wait_for(
        lambda: (world.mongo.triage_cases.find_one({"_id": case.case_id}) or {}).get("feedback"),
        timeout=WAIT,
        what="the feedback recorded",
    )
    stored = settled(world, case)
    assert stored["status"] == "acknowledged"
    assert stored["acknowledged"] == acknowledged_at, "the first acknowledgement's hour"
    assert stored["feedback"] == posted_event(world, case, feedback["message_id"]).time
    changes = events_about(world, STATUS_CHANGES, case)
    assert [event.data for event in changes] == [{"status": "acknowledged"}]
    kinds = [m["kind"] for m in conversation(world, case)]
    assert kinds == ["acknowledgement", "acknowledgement", "feedback"], "in posting order"


# --- a buyer's questions, through the operator --------------------------------------------


def test_a_buyers_question_reaches_the_operator_and_is_forwarded_to_the_worker_only(
    world: World, case: Case
) -> None:
    asked = hotline_json(
        "digests",
        "ask",
        case.case_id,
        "--text",
        "were the fire drills held?",
        token=world.token(world.buyer),
    )
    assert asked["case_id"] == case.case_id
    question_id = asked["message_id"]
    event = posted_event(world, case, question_id)
    assert (event.data["kind"], event.data["author_role"]) == ("question", Role.BUYER)
    assert set(event.data["envelope"]["recipients"]) == set(world.operator_keys())

    listed_at_triage(world, case, question_id, "the question at triage")
    key = str(world.operator_key_file)
    operator = world.token("operator")
    [shown] = hotline_json("cases", "messages", case.case_id, "--key", key, token=operator)
    assert shown["text"] == "were the fire drills held?"
    assert (shown["kind"], shown["author_role"], shown["decision"]) == (
        "question",
        Role.BUYER,
        None,
    )

    hotline("cases", "forward", case.case_id, question_id, "--key", key, token=operator)
    forward_id = decision_id(question_id)
    forward = posted_event(world, case, forward_id).data
    assert forward["kind"] == "forward" and forward["in_reply_to"] == question_id
    assert list(forward["envelope"]["recipients"]) == [case.reply_key_id], "the worker only"
    assert opened_by_worker(case, forward_id, "forward", forward["envelope"]) == (
        "were the fire drills held?"
    )
    forward_hash = envelope_hash(Envelope.model_validate(forward["envelope"]))
    [disclosed] = wait_for(
        lambda: [
            e.data
            for e in events_about(world, DISCLOSURES, case)
            if e.data["envelope_hash"] == forward_hash
        ],
        timeout=WAIT,
        what="the forward's disclosure",
    )
    assert disclosed == {
        "principal": {"role": "worker", "org": None, "subject": None},
        "envelope_class": "message",
        "envelope_hash": forward_hash,
        "recipient_key_ids": [case.reply_key_id],
    }
    decided = {m["message_id"]: m for m in conversation(world, case)}
    assert decided[question_id]["decision"] == "forward"
    assert decided[forward_id]["envelope"] is None

    again = post(
        world, case, {"message_id": forward_id, "kind": "decline", "in_reply_to": question_id}
    )
    assert again.status_code == 409, "a question is decided once"
    twice = hotline(
        "cases", "forward", case.case_id, question_id, "--key", key, token=operator, check=False
    )
    assert twice.returncode != 0 and "already decided" in twice.stderr


def test_the_operator_hands_out_a_question_only_after_disclosing_it(
    world: World, case: Case
) -> None:
    body = question(world, case, "how many workers were affected?")
    assert ask(world, case, body).status_code == 201
    [listed] = listed_at_triage(world, case, body["message_id"], "the question at triage")
    text = open_envelope(
        listed["envelope"],
        private_key=world.operator_private,
        case_id=case.case_id,
        routing=message_routing(body["message_id"], "question"),
    )
    assert text == b"how many workers were affected?"
    question_hash = envelope_hash(Envelope.model_validate(body["envelope"]))
    disclosures = [e.data for e in events_about(world, DISCLOSURES, case)]
    assert any(
        d["envelope_hash"] == question_hash
        and d["envelope_class"] == "message"
        and d["principal"]["role"] == Role.OPERATOR
        for d in disclosures
    ), "disclosed before the answer left triage"


def test_a_declined_question_never_reaches_the_worker(world: World, case: Case) -> None:
    body = question(world, case, "who reported this?")
    assert ask(world, case, body).status_code == 201
    listed_at_triage(world, case, body["message_id"], "the question at triage")
    hotline("cases", "decline", case.case_id, body["message_id"], token=world.token("operator"))

    decline = posted_event(world, case, decision_id(body["message_id"])).data
    assert decline["kind"] == "decline" and decline["envelope"] is None
    assert decline["in_reply_to"] == body["message_id"]
    decided = {m["message_id"]: m for m in conversation(world, case)}
    assert decided[body["message_id"]]["decision"] == "decline"
    assert decided[decision_id(body["message_id"])]["envelope_hash"] is None
    to_worker = [
        e for e in events_about(world, MESSAGES, case) if e.data["kind"] in ("forward", "reply")
    ]
    assert to_worker == [], "nothing was sealed to the worker"
    forward = operator_message(
        case,
        "forward",
        "who reported this?",
        message_id=decision_id(body["message_id"]),
        in_reply_to=body["message_id"],
    )
    assert post(world, case, forward).status_code == 409, "declined is decided"


def test_another_authors_message_under_the_same_id_is_kept_beside_it(
    world: World, case: Case
) -> None:
    """Each service checks an id against its own authors only: a worker's answer under a
    buyer's question's id, and a buyer's question under the id of the operator's decision
    on another, are both recorded, and the decision is still taken."""
    first = question(world, case, "were the wages paid?")
    assert ask(world, case, first).status_code == 201
    taken = first["message_id"]
    answered = worker_answers(world, case, taken, "not since May")
    assert answered.status_code == 201, answered.text
    squatter = question(world, case, "and the overtime?", message_id=decision_id(taken))
    assert ask(world, case, squatter).status_code == 201
    kinds = {("question", taken), ("answer", taken), ("question", decision_id(taken))}

    def all_three() -> list[Document] | None:
        found = conversation(world, case)
        return found if {(m["kind"], m["message_id"]) for m in found} == kinds else None

    listed = wait_for(all_three, timeout=WAIT, what="both questions and the answer at triage")
    opened = {  # each opens with its own routing: none was taken for another
        (m["kind"], m["message_id"]): open_envelope(
            m["envelope"],
            private_key=world.operator_private,
            case_id=case.case_id,
            routing=message_routing(m["message_id"], m["kind"]),
        ).decode()
        for m in listed
    }
    assert opened == {
        ("question", taken): "were the wages paid?",
        ("answer", taken): "not since May",
        ("question", decision_id(taken)): "and the overtime?",
    }

    decline = {"message_id": decision_id(taken), "kind": "decline", "in_reply_to": taken}
    assert post(world, case, decline).status_code == 201, "a buyer's id blocks no decision"
    decided = {(m["kind"], m["message_id"]): m for m in conversation(world, case)}
    assert decided[("question", taken)]["decision"] == "decline"
    assert decided[("question", decision_id(taken))]["decision"] is None
    assert ("decline", decision_id(taken)) in decided
    reused = operator_message(case, "reply", "thank you", message_id=taken)
    assert post(world, case, reused).status_code == 409, "the worker's id: intake keeps both"

    # A redelivery of the answer is still recorded once. The case's events share a partition,
    # so once a question sent after it is recorded, the redelivery has been handled.
    [answer] = [e for e in events_about(world, MESSAGES, case) if e.data["kind"] == "answer"]
    publish_events(world.settings, [answer])
    later = question(world, case, "one more thing?")
    assert ask(world, case, later).status_code == 201
    listed_at_triage(world, case, later["message_id"], "the later question at triage")
    assert [m["kind"] for m in conversation(world, case)].count("answer") == 1


def test_a_buyer_that_did_not_receive_the_case_cannot_ask_about_it(
    world: World, case: Case
) -> None:
    body = question(world, case, "anything?")
    answer = ask(world, case, body, user=world.other_buyer)
    assert answer.status_code == 404, answer.text
    assert world.mongo.notify_questions.find_one({"_id": body["message_id"]}) is None
    unknown = world.call(
        "notify", "POST", f"/api/cases/{uuid.uuid4()}/questions", world.buyer, body
    )
    assert unknown.status_code == 404


def test_a_question_not_sealed_to_exactly_the_operator_keys_is_refused(
    world: World, case: Case
) -> None:
    message_id = str(uuid.uuid4())
    own = {world.buyer_party.key_id: world.buyer_party.public}
    for recipients in (own, {**world.operator_keys(), **own}, case.reply_recipients):
        envelope = sealed("hi", case.case_id, message_id, "question", recipients)
        body = {"message_id": message_id, "kind": "question", "envelope": envelope}
        answer = ask(world, case, body)
        assert answer.status_code == 422, answer.text
        assert "operator keys" in answer.json()["detail"]
    other_case = question(world, case, "hi")
    other_case["envelope"] = sealed(
        "hi", str(uuid.uuid4()), other_case["message_id"], "question", world.operator_keys()
    )
    assert ask(world, case, other_case).status_code == 422
    not_a_question = operator_message(case, "reply", "hi", world.operator_keys())
    assert ask(world, case, not_a_question).status_code == 422
    assert world.mongo.notify_questions.count_documents({"case_id": case.case_id}) == 0


# --- who may do what ----------------------------------------------------------------------


def test_each_route_refuses_the_wrong_role_and_a_missing_token(world: World, case: Case) -> None:
    messages = f"/api/cases/{case.case_id}/messages"
    reply = operator_message(case, "reply", "hi")
    asked = question(world, case, "hi")
    routes = [
        ("triage", "GET", f"/api/cases/{case.case_id}/reply-key", None, world.buyer),
        ("triage", "GET", messages, None, world.buyer),
        ("triage", "POST", messages, reply, world.buyer),
        ("notify", "GET", "/api/operator-keys", None, "operator"),
        ("notify", "POST", f"/api/cases/{case.case_id}/questions", asked, "operator"),
    ]
    for service, method, path, body, wrong in routes:
        anonymous = world.call(service, method, path, None, body)
        assert anonymous.status_code == 401, (path, anonymous.text)
        refused = world.call(service, method, path, wrong, body)
        assert refused.status_code == 403, (path, refused.text)
    assert world.mongo.triage_messages.count_documents({"case_id": case.case_id}) == 0
    assert world.mongo.notify_questions.count_documents({"case_id": case.case_id}) == 0


def test_the_operator_replies_with_the_cli_and_the_worker_opens_it(
    world: World, case: Case
) -> None:
    operator = world.token("operator")
    sent = hotline_json(
        "cases",
        "reply",
        case.case_id,
        "--kind",
        "acknowledgement",
        "--text",
        "收到，我们会跟进",
        token=operator,
    )
    assert (sent["case_id"], sent["kind"]) == (case.case_id, "acknowledgement")
    event = posted_event(world, case, sent["message_id"])
    text = opened_by_worker(case, sent["message_id"], "acknowledgement", event.data["envelope"])
    assert text == "收到，我们会跟进"
    shown = hotline(
        "cases", "messages", case.case_id, "--key", str(world.operator_key_file), token=operator
    ).stdout
    assert "acknowledgement" in shown and sent["message_id"] in shown
    empty = hotline("cases", "reply", case.case_id, "--text", "  ", token=operator, check=False)
    assert empty.returncode != 0 and "empty" in empty.stderr
