"""Intake's report API against the running services, over real HTTP: a report sealed to
exactly the keys of the registry, with a solved challenge, is stored (its attachments apart,
one document each) and announced (the event names the attachments, never carries them);
every bad report gets its 4xx and fixed code, never echoes what was sent, and stores nothing.
No answer sets a cookie: every request goes through a client that fails on one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.envelope import EnvelopeKind, envelope_hash, seal_envelope
from hotline.shared.events import EventError, EventType, parse_event, topic_for
from hotline.shared.keys import b64decode_strict, b64encode, generate_keypair
from hotline.shared.outbox import PROTOCOL_FIELDS
from hotline.shared.pow import leading_zero_bits, pow_digest, solve
from hotline.shared.receipt import derive_receipt, lookup_hash, new_receipt
from hotline.shared.reports import routing_metadata
from hotline.shared.store import Databases
from hotline.shared.tlog.checkpoint import open_checkpoint
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.note import Ed25519Verifier, parse_verifier_key
from hotline.shared.tlog.verify import verify_inclusion
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.topics import records_on
from tests.support.waiting import wait_for

Keys = dict[str, bytes]
Document = dict[str, Any]
MAX_BODY_BYTES = 24 * 1024 * 1024  # the contract's limit (issue 16, section 4)
MAX_FILES = 4  # attachments of one report (contract, section 4)
REPORT_TOPIC = topic_for(EventType.REPORT_SUBMITTED)
PHOTO = b"image/jpeg\n\xff\xd8\xff\xe0" + bytes(range(256)) * 8
VOICE = b"audio/webm\n\x1a\x45\xdf\xa3" + bytes(range(255, -1, -1)) * 8


def refuse_cookies(response: httpx.Response) -> None:
    assert "set-cookie" not in response.headers, f"{response.request.url} sets a cookie"


@dataclass
class World:
    """One factory with a linked buyer, the operator key this module registered, and the
    keys intake must expect: every operator key of the registry and the buyer's."""

    http: httpx.Client
    factory: str
    factory_name: str
    factory_city: str
    operator: Party
    buyer: Party
    content_keys: Keys
    identity_keys: Keys
    stranger: Party = field(default_factory=Party.new)  # a key the registry does not know

    def challenge(self) -> dict[str, Any]:
        response = self.http.get("/api/challenge")
        assert response.status_code == 200, response.text
        issued: dict[str, Any] = response.json()
        return issued

    def solved(self) -> dict[str, str]:
        issued = self.challenge()
        return {
            "challenge": issued["challenge"],
            "solution": solve(issued["challenge"], issued["difficulty"]),
        }

    def report(
        self,
        *,
        content_to: Keys | None = None,
        identity_to: Keys | None = None,
        attachments_to: Keys | None = None,
        attachments: int = 0,
        content_kind: EnvelopeKind = "content",
        attachment_kind: EnvelopeKind = "attachment",
        content_case: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A submission body built as a client builds it (sealed, solved), then `fields`
        replaced. The lookup token and reply key are random: intake cannot tell them from
        derived ones, and Argon2id per body would only slow the module down."""
        case_id = fields.get("case_id", str(uuid.uuid4()))
        routing = routing_metadata(self.factory, ["safety"], False, "en")

        def sealed(plain: bytes, kind: EnvelopeKind, to: Keys, of_case: str = case_id) -> Any:
            envelope = seal_envelope(
                plain, case_id=of_case, kind=kind, routing=routing, recipients=to
            )
            return envelope.model_dump()

        files = [PHOTO, VOICE] * MAX_FILES
        body = {
            "case_id": case_id,
            **routing,
            "channel": "web",
            "lookup_token": secrets.token_bytes(32).hex(),
            "reply_key": b64encode(generate_keypair()[1]),
            "content": sealed(
                b"the fire exit is chained",
                content_kind,
                self.content_keys if content_to is None else content_to,
                content_case or case_id,
            ),
            "identity": sealed(
                b"line 4, night shift",
                "identity",
                self.identity_keys if identity_to is None else identity_to,
            ),
            "attachments": [
                sealed(
                    plain,
                    attachment_kind,
                    self.content_keys if attachments_to is None else attachments_to,
                )
                for plain in files[:attachments]
            ],
        }
        work = {} if "pow" in fields else {"pow": self.solved()}
        return body | work | fields

    def submit(self, body: Any) -> httpx.Response:
        if isinstance(body, bytes):
            return self.http.post(
                "/api/reports", content=body, headers={"Content-Type": "application/json"}
            )
        return self.http.post("/api/reports", json=body)


@pytest.fixture(scope="module")
def mongo(system: LocalSystem) -> Iterator[Databases[Collection[Document]]]:
    client: MongoClient[Document] = MongoClient(system.settings.mongo_url)
    with client:
        yield Databases(client, system.settings.mongo_db)


@pytest.fixture(scope="module")
def intake_cases(mongo: Databases[Collection[Document]]) -> Collection[Document]:
    return mongo.intake_cases


@pytest.fixture(scope="module")
def intake_attachments(mongo: Databases[Collection[Document]]) -> Collection[Document]:
    return mongo.intake_attachments


@pytest.fixture(scope="module")
def world(system: LocalSystem, mongo: Databases[Collection[Document]]) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    operator, buyer = Party.new(), Party.new()
    factory, buyer_id, tag = unique_factory_code(), unique_buyer_id(), secrets.token_hex(4)
    name, city = f"Kestrel{tag} Toys", f"Bắc Giang {tag[::-1]}x"
    admin.created("operator-keys", {"public_key": operator.public_b64})
    admin.created("factories", {"code": factory, "name": name, "city": city, "country": "VN"})
    admin.created(
        "buyers", {"buyer_id": buyer_id, "name": "Intake", "public_key": buyer.public_b64}
    )
    admin.created("links", {"buyer_id": buyer_id, "factory": factory})
    # The registry as stored: the session's other modules may have registered operator keys
    # too, and every one of them is a recipient (GET /api/recipients needs the audit log).
    operators = {
        doc["_id"]: b64decode_strict(doc["public_key"]) for doc in mongo.operator_keys.find()
    }
    assert operators[operator.key_id] == operator.public
    with httpx.Client(
        base_url=settings.intake_url,
        timeout=60,
        event_hooks={"response": [refuse_cookies]},
        verify=tls(),
    ) as http:
        yield World(
            http=http,
            factory=factory,
            factory_name=name,
            factory_city=city,
            operator=operator,
            buyer=buyer,
            content_keys=operators | {buyer.key_id: buyer.public},
            identity_keys=operators,
        )


def stored_nothing(
    body: Any, cases: Collection[Document], attachments: Collection[Document]
) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("case_id"), str):
        return True
    return (
        cases.find_one({"_id": body["case_id"]}) is None
        and attachments.count_documents({"case_id": body["case_id"]}) == 0
    )


def state(document: Document | None) -> Document:
    """A stored case without its outbox entries (the relay publishes and removes them)."""
    assert document is not None
    return {k: v for k, v in document.items() if k not in PROTOCOL_FIELDS - {"version"}}


def ciphertext_bytes(envelope: Document) -> int:
    return len(base64.b64decode(envelope["ciphertext"], validate=True))


async def records_about(settings: Settings, topic: str, subject: str) -> list[bytes]:
    """The raw values of the events about `subject` on `topic`, read from its beginning to
    its end now by a plain consumer, as any client of the broker reads them."""
    return [raw for raw in await records_on(settings, topic) if _subject(raw) == subject]


def _subject(raw: bytes) -> str | None:
    try:
        return parse_event(raw).subject
    except EventError:
        return None  # other tests' poison records


# --- what the page asks before it seals ---------------------------------------------------


def test_recipients_are_the_operator_keys_and_the_linked_buyers_key_with_their_proofs(
    world: World, system: LocalSystem
) -> None:
    def proven() -> Document | None:
        response = world.http.get(f"/api/recipients/{world.factory}")
        assert response.status_code == 200, response.text
        listed: Document = response.json()
        keys = {*listed["content"], *listed["identity"]}
        return listed if keys <= set(listed["transparency"]["proofs"]) else None

    listed = wait_for(proven, timeout=60, what="a checkpoint covering every recipient key")
    assert set(listed) == {"factory", "content", "identity", "transparency"}
    assert listed["factory"] == world.factory
    assert listed["content"] == {kid: b64encode(pub) for kid, pub in world.content_keys.items()}
    assert listed["identity"] == {kid: b64encode(pub) for kid, pub in world.identity_keys.items()}
    assert world.buyer.key_id not in listed["identity"], "identity is for operators only"

    vkey = parse_verifier_key(
        httpx.get(f"{system.settings.audit_url}/vkey", verify=tls()).text.strip()
    )
    assert isinstance(vkey, Ed25519Verifier)
    checkpoint, _ = open_checkpoint(listed["transparency"]["checkpoint"], vkey.name, [vkey])
    for kid, public in listed["content"].items():
        proof = listed["transparency"]["proofs"][kid]
        leaf = base64.b64decode(proof["entry"], validate=True)
        entry = json.loads(leaf)
        assert (entry["type"], entry["key_id"], entry["public_key"]) == (
            "key.registered",
            kid,
            public,
        )
        hashes = [base64.b64decode(h, validate=True) for h in proof["inclusion"]]
        verify_inclusion(
            proof["index"], checkpoint.size, leaf_hash(leaf), hashes, checkpoint.root_hash
        )


def test_recipients_of_an_unknown_factory_are_refused_without_echoing_it(world: World) -> None:
    code = unique_factory_code()
    response = world.http.get(f"/api/recipients/{code}")
    assert response.status_code == 422
    assert response.json()["code"] == "unknown-factory"
    assert code not in response.text


def test_factories_are_found_by_part_of_their_name_city_or_code_in_any_case(
    world: World,
) -> None:
    ours = [
        {
            "code": world.factory,
            "name": world.factory_name,
            "city": world.factory_city,
            "country": "VN",
        }
    ]
    name_part = world.factory_name.split(" ")[0][2:].upper()  # "ESTREL<tag>"
    city_part = world.factory_city.upper()  # "BẮC GIANG <tag>X": casefolded beyond ASCII
    code_part = world.factory[3:].lower()
    for q in (name_part, city_part, code_part):
        response = world.http.get("/api/factories", params={"q": q})
        assert response.status_code == 200, response.text
        assert response.json() == ours, q
    nowhere = world.http.get("/api/factories", params={"q": f"nowhere {secrets.token_hex(8)}"})
    assert nowhere.status_code == 200 and nowhere.json() == []


@pytest.mark.parametrize("q", ["K", "K" * 65])
def test_a_factory_search_of_under_2_or_over_64_characters_is_refused(world: World, q: str) -> None:
    response = world.http.get("/api/factories", params={"q": q})
    assert response.status_code == 422
    assert response.json()["code"] == "bad-report"


def test_a_challenge_names_its_difficulty(world: World) -> None:
    first, second = world.challenge(), world.challenge()
    assert set(first) == {"challenge", "difficulty", "expires_in"}
    assert type(first["difficulty"]) is int and first["difficulty"] >= 0
    assert type(first["expires_in"]) is int and first["expires_in"] > 0
    assert isinstance(first["challenge"], str) and first["challenge"] != second["challenge"]


# --- a good report ------------------------------------------------------------------------


def test_a_report_is_stored_with_its_attachments_apart_and_announced_without_them(
    world: World,
    system: LocalSystem,
    mongo: Databases[Collection[Document]],
    intake_cases: Collection[Document],
    intake_attachments: Collection[Document],
) -> None:
    receipt = new_receipt()
    derived = derive_receipt(receipt)
    body = world.report(
        attachments=2,
        lookup_token=derived.lookup_token.hex(),
        reply_key=b64encode(derived.reply_public),
    )
    response = world.submit(body)
    assert response.status_code == 201, response.text
    assert response.json() == {"case_id": body["case_id"], "status": "received"}

    stored = intake_cases.find_one({"_id": body["case_id"]})
    assert stored is not None
    assert stored["receipt_lookup"] == lookup_hash(derived.lookup_token)
    assert stored["reply_key"] == body["reply_key"]
    assert stored["content"] == body["content"] and stored["identity"] == body["identity"]
    assert (stored["factory"], stored["categories"], stored["urgent"]) == (
        world.factory,
        ["safety"],
        False,
    )
    assert stored["status"] == "received" and stored["server_encrypted"] is False
    kept = json.dumps(stored, default=str)
    assert body["lookup_token"] not in kept, "the lookup token itself is never stored"
    assert receipt.replace(" ", "") not in kept.replace(" ", ""), "nor the receipt"

    refs = [
        {
            "hash": envelope_hash(attachment),
            "size": ciphertext_bytes(attachment),
            "recipients": sorted(world.content_keys),
        }
        for attachment in body["attachments"]
    ]
    assert stored["attachments"] == refs, "the case holds references, not the attachments"
    assert all(a["ciphertext"] not in kept for a in body["attachments"])
    apart = {doc["_id"]: doc for doc in intake_attachments.find({"case_id": body["case_id"]})}
    assert set(apart) == {ref["hash"] for ref in refs}
    for attachment, ref in zip(body["attachments"], refs, strict=True):
        assert apart[ref["hash"]]["envelope"] == attachment

    [raw] = wait_for(
        lambda: asyncio.run(records_about(system.settings, REPORT_TOPIC, body["case_id"])),
        timeout=60,
        what="the report's event on its topic",
    )
    announced = parse_event(raw).data
    assert announced["attachments"] == refs
    assert announced["content"] == body["content"]
    text = raw.decode()
    for attachment in body["attachments"]:
        assert attachment["ciphertext"][1000:1100] not in text, "no attachment in Kafka"

    triaged = wait_for(
        lambda: mongo.triage_cases.find_one({"_id": body["case_id"]}),
        timeout=60,
        what="the case at triage",
    )
    assert triaged["content"] == body["content"] and triaged["severity"] == "critical"


# --- bad reports --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad body, the answer it must get, and what of it the answer must not contain."""

    build: Callable[[World], Any]  # the body (bytes: sent as they are)
    status: int
    code: str
    secret: Callable[[World, Any], str]  # the submitted value that must not come back


def _field(name: str) -> Callable[[World, Any], str]:
    return lambda w, body: str(body[name])


def _without(name: str, **fields: Any) -> Callable[[World], Any]:
    def build(world: World) -> Any:
        body = world.report(**fields)
        del body[name]
        return body

    return build


def _with_content(**changes: Any) -> Callable[[World], Any]:
    def build(world: World) -> Any:
        body = world.report()
        return body | {"content": body["content"] | changes}

    return build


_NONCE_OF_12 = b64encode(secrets.token_bytes(12))
_TAG = f"zq{secrets.token_hex(6)}"  # a value no answer has any reason to contain
_OTHER_CASE = str(uuid.uuid4())

BAD_REPORTS: dict[str, Bad] = {
    "unknown factory": Bad(
        lambda w: w.report(factory=f"F-NOWHERE-{_TAG.upper()}"),
        422,
        "unknown-factory",
        _field("factory"),
    ),
    "content not sealed to the linked buyer": Bad(
        lambda w: w.report(
            content_to={k: v for k, v in w.content_keys.items() if k != w.buyer.key_id}
        ),
        422,
        "wrong-recipients",
        lambda w, body: w.buyer.key_id,
    ),
    "content also sealed to an unknown key": Bad(
        lambda w: w.report(content_to=w.content_keys | {w.stranger.key_id: w.stranger.public}),
        422,
        "wrong-recipients",
        lambda w, body: w.stranger.key_id,
    ),
    "identity sealed to a buyer": Bad(
        lambda w: w.report(identity_to=w.identity_keys | {w.buyer.key_id: w.buyer.public}),
        422,
        "wrong-recipients",
        lambda w, body: w.buyer.key_id,
    ),
    "attachment not sealed to the linked buyer": Bad(
        lambda w: w.report(attachments=1, attachments_to=w.identity_keys),
        422,
        "wrong-recipients",
        lambda w, body: w.buyer.key_id,
    ),
    "content envelope of another case": Bad(
        lambda w: w.report(content_case=_OTHER_CASE),
        422,
        "bad-envelope",
        lambda w, body: _OTHER_CASE,
    ),
    "identity envelope given as content": Bad(
        lambda w: w.report(content_kind="identity"),
        422,
        "bad-envelope",
        lambda w, body: body["content"]["ciphertext"][:40],
    ),
    "content envelope given as attachment": Bad(
        lambda w: w.report(attachments=1, attachment_kind="content"),
        422,
        "bad-envelope",
        lambda w, body: body["attachments"][0]["ciphertext"][:40],
    ),
    "envelope with a nonce of 12 bytes": Bad(
        _with_content(nonce=_NONCE_OF_12), 422, "bad-envelope", lambda w, body: _NONCE_OF_12
    ),
    "envelope with a malformed recipient key id": Bad(
        _with_content(recipients={f"x25519:{_TAG}": b64encode(bytes(80))}),
        422,
        "bad-envelope",
        lambda w, body: _TAG,
    ),
    "no content envelope": Bad(_without("content"), 422, "bad-report", _field("lookup_token")),
    "lookup token in upper case": Bad(
        lambda w: w.report(lookup_token=secrets.token_hex(32).upper()),
        422,
        "bad-report",
        _field("lookup_token"),
    ),
    "lookup token too short": Bad(
        lambda w: w.report(lookup_token=secrets.token_hex(31)),
        422,
        "bad-report",
        _field("lookup_token"),
    ),
    "reply key of 31 bytes": Bad(
        lambda w: w.report(reply_key=b64encode(secrets.token_bytes(31))),
        422,
        "bad-report",
        _field("reply_key"),
    ),
    "unknown category": Bad(
        lambda w: w.report(categories=[f"nonsense-{_TAG}"]),
        422,
        "unknown-category",
        lambda w, body: _TAG,
    ),
    "five attachments": Bad(
        lambda w: w.report(attachments=5),
        422,
        "too-many-files",
        lambda w, body: body["attachments"][4]["ciphertext"][:40],
    ),
    "case id not a UUID": Bad(
        lambda w: w.report(case_id=f"case-{_TAG}"), 422, "bad-report", _field("case_id")
    ),
    "language not a tag": Bad(
        lambda w: w.report(language=f"en\n{_TAG}"), 422, "bad-report", lambda w, body: _TAG
    ),
    "field not in the schema": Bad(
        lambda w: w.report(note=f"hello {_TAG}"), 422, "bad-report", lambda w, body: _TAG
    ),
    "field not in the schema, by its name": Bad(
        lambda w: w.report() | {f"note-{_TAG}": "hello"},
        422,
        "bad-report",
        lambda w, body: _TAG,
    ),
    "envelope with a field not in its shape": Bad(
        _with_content(**{f"note-{_TAG}": 1}),
        422,
        "bad-envelope",
        lambda w, body: _TAG,
    ),
    "not JSON": Bad(
        lambda w: f"case_id=1&factory=F-{_TAG}".encode(),
        422,
        "bad-report",
        lambda w, body: _TAG,
    ),
    "not an object": Bad(lambda w: ["a", f"list {_TAG}"], 422, "bad-report", lambda w, b: _TAG),
}


@pytest.mark.parametrize(
    "name",
    [name for name in BAD_REPORTS],
)
def test_a_bad_report_gets_its_code_without_its_value_and_nothing_is_stored(
    world: World,
    intake_cases: Collection[Document],
    intake_attachments: Collection[Document],
    name: str,
) -> None:
    bad = BAD_REPORTS[name]
    body = bad.build(world)
    response = world.submit(body)
    assert response.status_code == bad.status, response.text
    assert response.json()["code"] == bad.code, response.text
    assert bad.secret(world, body) not in response.text
    assert stored_nothing(body, intake_cases, intake_attachments)


# --- proof of work ------------------------------------------------------------------------


def _unsolved(challenge: str, difficulty: int) -> str:
    """The smallest counter that does not solve the challenge."""
    counter = 0
    while leading_zero_bits(pow_digest(challenge, str(counter))) >= difficulty:
        counter += 1
    return str(counter)


def _wrong_solution(world: World) -> dict[str, str]:
    issued = world.challenge()
    assert issued["difficulty"] > 0, "a challenge of difficulty 0 has no wrong solution"
    return {
        "challenge": issued["challenge"],
        "solution": _unsolved(issued["challenge"], issued["difficulty"]),
    }


def _forged(world: World) -> dict[str, str]:
    """A challenge of ours with its difficulty edited to 0, and a solution of that."""
    version, nonce, _, expiry, mac = world.challenge()["challenge"].split(".")
    edited = f"{version}.{nonce}.0.{expiry}.{mac}"
    return {"challenge": edited, "solution": solve(edited, 0)}


BAD_WORK: dict[str, Callable[[World], dict[str, Any]]] = {
    "no proof of work": _without("pow", attachments=1),
    "a wrong solution": lambda w: w.report(attachments=1, pow=_wrong_solution(w)),
    "a challenge with its difficulty edited": lambda w: w.report(attachments=1, pow=_forged(w)),
}


@pytest.mark.parametrize("name", list(BAD_WORK))
def test_a_report_without_its_work_done_is_refused_and_nothing_is_stored(
    world: World,
    intake_cases: Collection[Document],
    intake_attachments: Collection[Document],
    name: str,
) -> None:
    body = BAD_WORK[name](world)
    response = world.submit(body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad-challenge"
    assert stored_nothing(body, intake_cases, intake_attachments)


def test_a_challenge_is_spent_once(
    world: World, intake_cases: Collection[Document], intake_attachments: Collection[Document]
) -> None:
    first = world.report()
    assert world.submit(first).status_code == 201
    second = world.report(attachments=1, pow=first["pow"])
    replayed = world.submit(second)
    assert replayed.status_code == 409, replayed.text
    assert replayed.json()["code"] == "replayed"
    assert stored_nothing(second, intake_cases, intake_attachments)


def test_a_challenge_pays_for_a_report_or_a_lookup_not_both(
    world: World, intake_cases: Collection[Document], intake_attachments: Collection[Document]
) -> None:
    """A report spends its challenge in its case (no write of its own), a lookup in the spent
    challenges: each path refuses what the other spent."""
    report = world.report()
    assert world.submit(report).status_code == 201
    spent_by_the_report = world.http.post(
        "/api/status", json={"lookup_token": secrets.token_hex(32), "pow": report["pow"]}
    )
    assert spent_by_the_report.status_code == 409, spent_by_the_report.text
    assert spent_by_the_report.json()["code"] == "replayed"

    pow = world.solved()
    lookup = world.http.post(
        "/api/status", json={"lookup_token": secrets.token_hex(32), "pow": pow}
    )
    assert lookup.json()["code"] in {"wrong-receipt", "busy"}, lookup.text  # either way, spent
    after_a_lookup = world.report(attachments=1, pow=pow)
    refused = world.submit(after_a_lookup)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "replayed"
    assert stored_nothing(after_a_lookup, intake_cases, intake_attachments)


def test_asking_whether_a_case_exists_costs_a_challenge_each_time(world: World) -> None:
    """A report refused as `case-exists` stores nothing and still spends its challenge: one
    proof of work does not buy probe after probe of which case ids or receipts exist. The
    same report sent again (a retry after a lost answer) meets `case-exists`."""
    first = world.report()
    assert world.submit(first).status_code == 201
    assert_refused(world.submit(first), "case-exists")

    pow = world.solved()
    probe = world.report(case_id=first["case_id"], pow=pow)
    assert_refused(world.submit(probe), "case-exists")
    assert_refused(world.submit(world.report(pow=pow)), "replayed")


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["code"] == code, response.text


def test_two_reports_racing_with_one_challenge_store_one(
    world: World, intake_cases: Collection[Document]
) -> None:
    pow = world.solved()
    bodies = [world.report(pow=pow) for _ in range(4)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(world.submit, bodies))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"replayed"}
    stored = intake_cases.count_documents({"_id": {"$in": [b["case_id"] for b in bodies]}})
    assert stored == 1


def test_a_report_refused_for_its_factory_does_not_burn_its_challenge(world: World) -> None:
    good = world.report()
    refused = world.submit(good | {"factory": unique_factory_code()})
    assert refused.json()["code"] == "unknown-factory", refused.text
    accepted = world.submit(good)
    assert accepted.status_code == 201, accepted.text


# --- once only ----------------------------------------------------------------------------


def test_a_case_id_and_a_lookup_token_are_accepted_once(
    world: World, intake_cases: Collection[Document], intake_attachments: Collection[Document]
) -> None:
    first = world.report(attachments=1)
    assert world.submit(first).status_code == 201
    stored = state(intake_cases.find_one({"_id": first["case_id"]}))
    [kept] = intake_attachments.find({"case_id": first["case_id"]})

    # The same case id again, with a fresh token, challenge and attachment: the attachment
    # written before the case insert failed is deleted again.
    again = world.report(case_id=first["case_id"], attachments=1)
    refused = world.submit(again)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "case-exists"
    fresh = envelope_hash(again["attachments"][0])
    assert intake_attachments.find_one({"_id": fresh}) is None
    assert list(intake_attachments.find({"case_id": first["case_id"]})) == [kept]

    second = world.report(attachments=1, lookup_token=first["lookup_token"])
    refused = world.submit(second)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "case-exists"
    assert first["lookup_token"] not in refused.text
    assert stored_nothing(second, intake_cases, intake_attachments)
    assert state(intake_cases.find_one({"_id": first["case_id"]})) == stored, "unchanged"


# --- size ---------------------------------------------------------------------------------


def _chunks(data: bytes, size: int = 1024 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(
    "framing",
    [
        "content-length",
        "chunked",
    ],
)
def test_a_body_over_24_mib_is_refused_before_anything_is_stored(
    world: World,
    intake_cases: Collection[Document],
    intake_attachments: Collection[Document],
    framing: str,
) -> None:
    body = world.report(attachments=1)
    oversized = json.dumps(body | {"padding": "A" * MAX_BODY_BYTES}).encode()
    headers = {"Content-Type": "application/json"}
    if framing == "content-length":
        response = world.http.post("/api/reports", content=oversized, headers=headers)
    else:  # no Content-Length to trust: counted as it arrives
        response = world.http.post("/api/reports", content=_chunks(oversized), headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "file-too-large"
    assert stored_nothing(body, intake_cases, intake_attachments)
    # Not even its challenge was spent: the same report, of a sane size, goes in.
    assert world.submit(body).status_code == 201
