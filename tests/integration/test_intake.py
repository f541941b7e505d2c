"""Intake's report API against the running services: a report sealed to exactly the keys of
the registry is stored and announced; every bad report gets a clear 4xx and nothing is stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.shared.envelope import EnvelopeKind, seal_envelope
from hotline.shared.keys import b64decode_strict, b64encode
from hotline.shared.outbox import PROTOCOL_FIELDS
from hotline.shared.receipt import new_receipt
from hotline.shared.reports import routing_metadata
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.waiting import wait_for

Keys = dict[str, bytes]


@dataclass
class World:
    intake: str
    factory: str
    operator: Party
    buyer: Party
    stranger: Party  # a valid key the registry does not know
    content_keys: Keys  # as intake lists them: every operator key and the linked buyer's
    identity_keys: Keys

    def report(
        self,
        *,
        content_to: Keys | None = None,
        identity_to: Keys | None = None,
        content_kind: EnvelopeKind = "content",
        content_case: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A submission body sealed as a client seals it, then `fields` replaced."""
        case_id = str(uuid.uuid4())
        routing = routing_metadata(self.factory, ["safety"], False, "en")

        def sealed(text: bytes, kind: EnvelopeKind, of_case: str, to: Keys) -> dict[str, Any]:
            envelope = seal_envelope(
                text, case_id=of_case, kind=kind, routing=routing, recipients=to
            )
            return envelope.model_dump()

        body = {
            "case_id": case_id,
            **routing,
            "channel": "web",
            "receipt": new_receipt(),
            "content": sealed(
                b"the fire exit is chained",
                content_kind,
                content_case or case_id,
                self.content_keys if content_to is None else content_to,
            ),
            "identity": sealed(
                b"line 4, night shift",
                "identity",
                case_id,
                self.identity_keys if identity_to is None else identity_to,
            ),
        }
        return body | fields

    def submit(self, body: Any) -> httpx.Response:
        return httpx.post(f"{self.intake}/api/reports", json=body, timeout=30)


def decoded(keys: dict[str, str]) -> Keys:
    return {kid: b64decode_strict(pub) for kid, pub in keys.items()}


@pytest.fixture(scope="module")
def world(system: LocalSystem) -> World:
    settings = system.settings
    admin = AdminApi(settings)
    operator, buyer = Party.new(), Party.new()
    factory, buyer_id = unique_factory_code(), unique_buyer_id()
    admin.created("operator-keys", {"public_key": operator.public_b64})
    admin.created("factories", {"code": factory, "name": "Intake Test Toys", "country": "VN"})
    admin.created(
        "buyers", {"buyer_id": buyer_id, "name": "Intake", "public_key": buyer.public_b64}
    )
    admin.created("links", {"buyer_id": buyer_id, "factory": factory})
    listed = httpx.get(f"{settings.intake_url}/api/recipients/{factory}", timeout=30)
    assert listed.status_code == 200, listed.text
    return World(
        intake=settings.intake_url,
        factory=factory,
        operator=operator,
        buyer=buyer,
        stranger=Party.new(),
        content_keys=decoded(listed.json()["content"]),
        identity_keys=decoded(listed.json()["identity"]),
    )


@pytest.fixture(scope="module")
def mongo(system: LocalSystem) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(system.settings.mongo_url)
    with client:
        yield client[system.settings.mongo_db]


@pytest.fixture(scope="module")
def intake_cases(mongo: Any) -> Collection[dict[str, Any]]:
    cases: Collection[dict[str, Any]] = mongo.intake_cases
    return cases


def test_recipients_are_the_operator_keys_and_the_linked_buyers_key(world: World) -> None:
    listed = httpx.get(f"{world.intake}/api/recipients/{world.factory}", timeout=30).json()
    assert set(listed) == {"factory", "content", "identity"}
    assert listed["factory"] == world.factory
    assert listed["content"][world.operator.key_id] == world.operator.public_b64
    assert listed["content"][world.buyer.key_id] == world.buyer.public_b64
    assert world.operator.key_id in listed["identity"]
    assert world.buyer.key_id not in listed["identity"], "identity is for operators only"
    assert set(listed["identity"]) == set(listed["content"]) - {world.buyer.key_id}


def test_recipients_of_an_unknown_factory_is_404(world: World) -> None:
    code = unique_factory_code()
    response = httpx.get(f"{world.intake}/api/recipients/{code}", timeout=30)
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown factory {code}"}


def test_a_report_sealed_to_the_registry_is_stored_and_announced(
    world: World, intake_cases: Collection[dict[str, Any]], mongo: Any
) -> None:
    body = world.report()
    response = world.submit(body)
    assert response.status_code == 201, response.text
    assert response.json() == {"case_id": body["case_id"], "status": "received"}
    stored = intake_cases.find_one({"_id": body["case_id"]})
    assert stored is not None
    assert stored["content"] == body["content"] and stored["identity"] == body["identity"]
    assert (stored["factory"], stored["categories"], stored["urgent"]) == (
        world.factory,
        ["safety"],
        False,
    )
    assert stored["status"] == "received" and stored["server_encrypted"] is False
    digits = body["receipt"].replace("-", "").replace(" ", "")
    assert digits not in json.dumps(stored, default=str), "the receipt itself is never stored"
    triaged = wait_for(
        lambda: mongo.triage_cases.find_one({"_id": body["case_id"]}),
        timeout=60,
        what="the case at triage",
    )
    assert triaged["content"] == body["content"] and triaged["severity"] == "critical"


def state(document: dict[str, Any] | None) -> dict[str, Any]:
    """A stored case without its outbox entries (the relay publishes and removes them)."""
    assert document is not None
    return {k: v for k, v in document.items() if k not in PROTOCOL_FIELDS - {"version"}}


def _one_digit_off(receipt: str) -> str:
    first = next(i for i, c in enumerate(receipt) if c.isdigit())
    return receipt[:first] + str((int(receipt[first]) + 1) % 10) + receipt[first + 1 :]


def _nonce_of_12_bytes(body: dict[str, Any]) -> dict[str, Any]:
    return body | {"content": body["content"] | {"nonce": b64encode(bytes(12))}}


def _without(field: str) -> Callable[[World], dict[str, Any]]:
    def build(world: World) -> dict[str, Any]:
        body = world.report()
        del body[field]
        return body

    return build


BAD_REPORTS: dict[str, tuple[Callable[[World], Any], str]] = {
    "unknown factory": (
        lambda w: w.report(factory="F-NOWHERE-404"),
        "unknown factory F-NOWHERE-404",
    ),
    "content not sealed to the linked buyer": (
        lambda w: w.report(
            content_to={k: v for k, v in w.content_keys.items() if k != w.buyer.key_id}
        ),
        "content envelope recipients differ from the registry: missing ['x25519:",
    ),
    "content also sealed to an unknown key": (
        lambda w: w.report(content_to=w.content_keys | {w.stranger.key_id: w.stranger.public}),
        "content envelope recipients differ from the registry: missing [], unexpected",
    ),
    "identity sealed to a buyer": (
        lambda w: w.report(identity_to=w.identity_keys | {w.buyer.key_id: w.buyer.public}),
        "identity envelope recipients differ from the registry: missing [], unexpected",
    ),
    "content envelope of another case": (
        lambda w: w.report(content_case=str(uuid.uuid4())),
        "the content envelope is not the content of case",
    ),
    "identity envelope given as content": (
        lambda w: w.report(content_kind="identity"),
        "the content envelope is not the content of case",
    ),
    "malformed envelope": (
        lambda w: _nonce_of_12_bytes(w.report()),
        "nonce must be 24 bytes",
    ),
    "no content envelope": (_without("content"), "Field required"),
    "mistyped receipt": (
        lambda w: w.report(receipt=_one_digit_off(new_receipt())),
        "receipt: the receipt does not check out",
    ),
    "receipt of letters": (
        lambda w: w.report(receipt="abcd-efgh-ijkl-mnop"),
        "receipt: a receipt contains only digits",
    ),
    "unknown category": (
        lambda w: w.report(categories=["nonsense"]),
        "unknown categories ['nonsense']",
    ),
    "case id not a UUID": (lambda w: w.report(case_id="case-1"), "case_id must be a UUID"),
    "language not a tag": (lambda w: w.report(language="en\n"), "BCP 47"),
    "field not in the schema": (lambda w: w.report(note="hello"), "Extra inputs are not permitted"),
    "not an object": (lambda w: ["a", "list"], "Input should be a valid dictionary"),
}


@pytest.mark.parametrize("name", list(BAD_REPORTS))
def test_a_bad_report_gets_a_clear_4xx_and_nothing_is_stored(
    world: World, intake_cases: Collection[dict[str, Any]], name: str
) -> None:
    build, explanation = BAD_REPORTS[name]
    body = build(world)
    response = world.submit(body)
    assert response.status_code == 422, response.text
    assert explanation in str(response.json()["detail"])
    if isinstance(body, dict) and isinstance(body.get("case_id"), str):
        assert intake_cases.find_one({"_id": body["case_id"]}) is None


def test_a_body_that_is_not_json_is_refused(world: World) -> None:
    response = httpx.post(
        f"{world.intake}/api/reports",
        content=b"case_id=1&factory=F-001",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422
    assert "JSON decode error" in str(response.json()["detail"])


def test_a_case_id_and_a_receipt_are_accepted_once(
    world: World, intake_cases: Collection[dict[str, Any]]
) -> None:
    first = world.report()
    assert world.submit(first).status_code == 201
    stored = intake_cases.find_one({"_id": first["case_id"]})

    again = world.submit(first | {"receipt": new_receipt()})
    assert again.status_code == 409
    assert again.json() == {"detail": "a case with this id or receipt already exists"}

    same_receipt_typed_otherwise = first["receipt"].replace(" ", "-")
    second = world.report(receipt=same_receipt_typed_otherwise)
    refused = world.submit(second)
    assert refused.status_code == 409
    assert intake_cases.find_one({"_id": second["case_id"]}) is None
    assert state(intake_cases.find_one({"_id": first["case_id"]})) == state(stored), "unchanged"
