"""The worker's follow-up by receipt against the running services, over real HTTP and Kafka:
POST /api/status finds a case by its lookup token only, shows what the operators sent the
worker (sealed to the reply key, opened here as the page opens it) and the status triage
announced; every answer of it has the same length; a wrong token is one calm 404 that makes
the next challenge harder; the worker's answer, sealed to exactly the operator keys, is
stored and announced with its attachments apart; everything else is refused, storing
nothing.

What the operators send is published straight to the topic here, as triage publishes it
(tests/integration/test_conversation.py covers triage's half).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.bus import make_producer, publish
from hotline.shared.envelope import envelope_hash, open_envelope, seal_envelope
from hotline.shared.events import (
    CaseStatusChanged,
    EventType,
    MessagePosted,
    new_event,
    parse_event,
    topic_for,
)
from hotline.shared.keys import b64decode_strict, b64encode, generate_keypair, key_id
from hotline.shared.messages import MessageKind, message_routing
from hotline.shared.pow import solve
from hotline.shared.reports import routing_metadata
from hotline.shared.store import Databases
from tests.support.registry import AdminApi, Party, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import unless_busy, wait_for

Document = dict[str, Any]
BUCKET = 64 * 1024
MESSAGE_TOPIC = topic_for(EventType.MESSAGE_POSTED)
PHOTO = b"image/jpeg\n\xff\xd8\xff\xe0" + bytes(range(256)) * 8


@dataclass
class Worker:
    """A case as its worker holds it: the lookup token and the reply key pair (random here:
    intake cannot tell them from ones derived from a receipt)."""

    case_id: str
    lookup_token: str
    reply_private: bytes
    reply_public: bytes


@dataclass
class World:
    http: httpx.Client
    factory: str
    operator: Party
    buyer: Party
    operators: dict[str, bytes]  # every operator key of the registry
    settings: Any
    mongo: Databases[Collection[Document]]

    def solved(self) -> dict[str, str]:
        issued = self.http.get("/api/challenge").json()
        return {
            "challenge": issued["challenge"],
            "solution": solve(issued["challenge"], issued["difficulty"]),
        }

    def report(self) -> Worker:
        case_id = str(uuid.uuid4())
        reply_private, reply_public = generate_keypair()
        token = secrets.token_bytes(32).hex()
        routing = routing_metadata(self.factory, ["wages"], False, "en")
        content = seal_envelope(
            b"wages withheld for two months",
            case_id=case_id,
            kind="content",
            routing=routing,
            recipients=self.operators | {self.buyer.key_id: self.buyer.public},
        )
        body = {
            "case_id": case_id,
            **routing,
            "lookup_token": token,
            "reply_key": b64encode(reply_public),
            "content": content.model_dump(),
            "pow": self.solved(),
        }
        response = self.http.post("/api/reports", json=body)
        assert response.status_code == 201, response.text
        return Worker(case_id, token, reply_private, reply_public)

    def status(self, token: str) -> httpx.Response:
        return unless_busy(
            lambda: self.http.post(
                "/api/status", json={"lookup_token": token, "pow": self.solved()}
            ),
            what="the status lookup",
        )

    def answer(
        self,
        worker: Worker,
        *,
        to: dict[str, bytes] | None = None,
        photos: int = 0,
        message_id: str | None = None,
        token: str | None = None,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        message_id = message_id or str(uuid.uuid4())
        routing = message_routing(message_id, "answer")
        keys = self.operators if to is None else to
        body = {
            "lookup_token": token or worker.lookup_token,
            "message_id": message_id,
            "envelope": seal_envelope(
                b"the manager said we will be paid in March",
                case_id=worker.case_id,
                kind="content",
                routing=routing,
                recipients=keys,
            ).model_dump(),
            "attachments": [
                seal_envelope(
                    PHOTO,
                    case_id=worker.case_id,
                    kind="attachment",
                    routing=routing,
                    recipients=keys,
                ).model_dump()
                for _ in range(photos)
            ],
        }
        response = unless_busy(
            lambda: self.http.post("/api/answers", json=body | {"pow": self.solved()}),
            what="the answer",
        )
        return response, body


@pytest.fixture(scope="module")
def world(system: LocalSystem) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    operator, buyer = Party.new(), Party.new()
    factory, buyer_id = unique_factory_code(), f"buyer-{secrets.token_hex(4)}"
    admin.created("operator-keys", {"public_key": operator.public_b64})
    admin.created("factories", {"code": factory, "name": "Heron Garments", "country": "BD"})
    admin.created(
        "buyers", {"buyer_id": buyer_id, "name": "Followup", "public_key": buyer.public_b64}
    )
    admin.created("links", {"buyer_id": buyer_id, "factory": factory})
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client, httpx.Client(base_url=settings.intake_url, timeout=60, verify=tls()) as http:
        mongo = Databases(client, settings.mongo_db)
        operators = {
            doc["_id"]: b64decode_strict(doc["public_key"]) for doc in mongo.operator_keys.find()
        }
        yield World(http, factory, operator, buyer, operators, settings, mongo)


def _operator_sends(world: World, worker: Worker, kind: MessageKind, text: str) -> str:
    """Publish an operator's message to the worker as triage does: sealed to the reply key."""
    message_id = str(uuid.uuid4())
    envelope = seal_envelope(
        text.encode(),
        case_id=worker.case_id,
        kind="content",
        routing=message_routing(message_id, kind),
        recipients={key_id(worker.reply_public): worker.reply_public},
    )
    event = new_event(
        worker.case_id,
        MessagePosted(
            message_id=message_id, kind=kind, author_role="triage-analyst", envelope=envelope
        ),
    )
    asyncio.run(_publish(world.settings, event))
    return message_id


async def _publish(settings: Any, *events: Any) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in events:
            await publish(producer, event)
    finally:
        await producer.stop()


def test_a_case_is_found_by_its_lookup_token_and_shows_its_status_and_days(world: World) -> None:
    worker = world.report()
    response = world.status(worker.lookup_token)
    assert response.status_code == 200
    shown = response.json()
    assert shown["found"] is True
    assert (shown["case_id"], shown["status"]) == (worker.case_id, "received")
    assert len(shown["received"]) == 10 and shown["received"] == shown["updated"]  # a day
    assert shown["acknowledged"] is None and shown["feedback"] is None
    assert shown["messages"] == [] and shown["answers"] == []
    operators = shown["operators"]
    assert set(operators["identity"]) == set(world.operators) == set(operators["content"])
    assert world.buyer.key_id not in operators["identity"]  # answers never go to buyers
    assert operators["transparency"]["checkpoint"]
    assert response.headers["cache-control"] == "no-store"


def test_a_wrong_token_is_one_calm_404_and_every_answer_has_the_same_length(
    world: World,
) -> None:
    first, second = world.report(), world.report()
    _operator_sends(world, second, "reply", "we are looking into it " * 40)
    wait_for(
        lambda: world.status(second.lookup_token).json()["messages"],
        what="the reply at intake",
    )
    answers = [
        world.status(first.lookup_token),
        world.status(second.lookup_token),
        world.status(secrets.token_bytes(32).hex()),
    ]
    assert [a.status_code for a in answers] == [200, 200, 404]
    assert len({len(a.content) for a in answers}) == 1
    assert len(answers[0].content) % BUCKET == 0
    wrong = answers[2].json()
    assert (wrong["found"], wrong["code"]) == (False, "wrong-receipt")
    assert "case_id" not in wrong


CALM_FAILED_LOOKUPS_PER_MINUTE = 10  # intake's CALM_FAILURES_PER_MINUTE


def test_failed_lookups_make_the_next_challenge_harder(world: World) -> None:
    before = world.http.get("/api/challenge").json()["difficulty"]
    # Earlier tests' submissions may have raised it already (a bit per doubling of their
    # rate over the calm one): failures over the calm rate doubled as often raise it higher.
    raised_by_submissions = before - world.settings.pow_difficulty
    failures = CALM_FAILED_LOOKUPS_PER_MINUTE * 2**raised_by_submissions + 2
    for _ in range(failures):
        assert world.status(secrets.token_bytes(32).hex()).status_code == 404
    after = world.http.get("/api/challenge").json()["difficulty"]
    assert after > before


def test_operators_messages_and_status_reach_the_worker_sealed_to_the_reply_key(
    world: World,
) -> None:
    worker = world.report()
    ack = _operator_sends(world, worker, "acknowledgement", "we have your report")
    reply = _operator_sends(world, worker, "reply", "which floor is the blocked exit on?")
    asyncio.run(
        _publish(
            world.settings, new_event(worker.case_id, CaseStatusChanged(status="acknowledged"))
        )
    )
    shown = wait_for(
        lambda: (
            (s := world.status(worker.lookup_token).json())["status"] == "acknowledged"
            and len(s["messages"]) == 2
            and s
        ),
        what="the messages and status at intake",
    )
    assert [m["message_id"] for m in shown["messages"]] == [ack, reply]
    assert shown["acknowledged"] is not None
    opened = [
        open_envelope(
            m["envelope"],
            private_key=worker.reply_private,
            case_id=worker.case_id,
            routing=message_routing(m["message_id"], m["kind"]),
        )
        for m in shown["messages"]
    ]
    assert opened == [b"we have your report", b"which floor is the blocked exit on?"]


def test_the_workers_answer_is_stored_and_announced_with_its_photo_apart(world: World) -> None:
    worker = world.report()
    response, body = world.answer(worker, photos=1)
    assert response.status_code == 201, response.text
    assert response.json() == {"message_id": body["message_id"]}
    stored = world.mongo.intake_attachments.find_one({"message_id": body["message_id"]})
    assert stored is not None and stored["case_id"] == worker.case_id

    def announced() -> Any:
        for raw in asyncio.run(records_on(world.settings, MESSAGE_TOPIC)):
            event = parse_event(raw)
            if event.data.get("message_id") == body["message_id"]:
                return event
        return None

    event = wait_for(announced, what="the answer's event")
    data = event.data
    assert (data["kind"], data["author_role"], event.subject) == (
        "answer",
        "worker",
        worker.case_id,
    )
    assert set(data["envelope"]["recipients"]) == set(world.operators)
    [ref] = data["attachments"]
    assert ref["hash"] == envelope_hash(body["attachments"][0])
    assert "ciphertext" not in str(data["attachments"])  # a reference, never the photo
    day = wait_for(
        lambda: world.status(worker.lookup_token).json()["answers"], what="the answer's day"
    )
    assert day == [{"message_id": body["message_id"], "day": event.time[:10]}]
    plain = open_envelope(
        data["envelope"],
        private_key=world.operator.private,
        case_id=worker.case_id,
        routing=message_routing(body["message_id"], "answer"),
    )
    assert plain == b"the manager said we will be paid in March"


def test_an_answer_sealed_to_anyone_but_the_operators_is_refused_and_stores_nothing(
    world: World,
) -> None:
    worker = world.report()
    wider = world.operators | {world.buyer.key_id: world.buyer.public}
    response, body = world.answer(worker, to=wider, photos=1)
    assert (response.status_code, response.json()["code"]) == (422, "wrong-recipients")
    assert world.mongo.intake_messages.find_one({"_id": body["message_id"]}) is None
    assert world.mongo.intake_attachments.find_one({"message_id": body["message_id"]}) is None


def test_an_answer_is_taken_once_and_only_with_the_cases_token(world: World) -> None:
    worker = world.report()
    first, body = world.answer(worker)
    assert first.status_code == 201
    again, _ = world.answer(worker, message_id=body["message_id"])
    assert (again.status_code, again.json()["code"]) == (409, "message-exists")
    stranger, _ = world.answer(worker, token=secrets.token_bytes(32).hex())
    assert (stranger.status_code, stranger.json()["code"]) == (404, "wrong-receipt")
    unsolved = world.http.post(
        "/api/answers", json={**body, "message_id": str(uuid.uuid4()), "pow": None}
    )
    assert unsolved.status_code == 422


def test_a_status_query_that_is_not_one_is_refused_with_the_same_length(world: World) -> None:
    answers = [
        world.http.post(
            "/api/status", content=b"{not json", headers={"content-type": "application/json"}
        ),
        world.http.post("/api/status", json={"lookup_token": "00", "pow": world.solved()}),
        world.http.post(
            "/api/status",
            json={
                "lookup_token": secrets.token_bytes(32).hex(),
                "pow": {"challenge": "x", "solution": "1"},
            },
        ),
    ]
    assert [a.status_code for a in answers] == [422, 422, 400]
    assert len({len(a.content) for a in answers}) == 1
    assert all("found" in a.json() and a.json()["found"] is False for a in answers)


def test_the_operator_gets_the_answers_photos_with_the_routing_that_opens_them(
    world: World,
) -> None:
    worker = world.report()
    response, body = world.answer(worker, photos=2)
    assert response.status_code == 201
    token = password_token(world.settings, "operator", "operator")
    found = world.http.get(
        f"/api/cases/{worker.case_id}/attachments",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert found.status_code == 200, found.text
    listed = found.json()
    assert listed["attachments"] == []  # the report had none
    [answer] = listed["answers"]
    assert answer["message_id"] == body["message_id"]
    opened = [
        open_envelope(
            envelope,
            private_key=world.operator.private,
            case_id=worker.case_id,
            routing=answer["routing"],
        )
        for envelope in answer["attachments"]
    ]
    assert opened == [PHOTO, PHOTO]
