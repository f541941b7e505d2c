"""The authorisation matrix (issue 20): every route of every running service's OpenAPI
document, called with every kind of credential, answers the status TABLE says.

Credentials. Five that are no valid token: none at all; a garbage bearer; a real Keycloak
token that has expired (of a client of this module's whose tokens live one second: the test
waits until its `exp` and the services' leeway have passed); a real token's claims re-signed,
under Keycloak's key id, by a key Keycloak does not hold (foreign-signed); a real Keycloak
token of a client of this module's whose tokens name another audience, no service (wrong
audience). Each must be refused for its own reason (the 401's detail), not another. The last
three are the platform admin's, so that if one were accepted it would admit the most. Then a real
token of each role: the platform admin, an operator, a compliance officer, a buyer of org A
and a factory manager of factory F, and the same two roles of another organisation (buyer B,
factory G).

Every request names org A's and factory F's real objects (a case at F the test submitted, a
webhook of A's, F itself), so "buyer" and "manager" act on their own organisation's and
"other-buyer" and "other-manager" on someone else's. Bodies are minimal valid bodies (a
report sealed to F's recipients with its proof of work solved, a reply sealed to the case's
reply key, ...), so an admitted call answers its success status, and a refused one is
refused for who called, never because the body was wrong: a 422 cannot hide a missing 403.
A 2xx to another organisation must not name org A's objects either.

A route of a document with no row in TABLE, or a row of TABLE that no document has, fails
the test naming it; each service's mismatches are reported together, as a table.

Side effects stay in the module's own organisations: its factories, buyers and users (the
admin's calls create factories and buyers of unique names, rotate the key of a buyer only
this module knows, link that buyer to factory G); the one operator key it registers is what
other modules do too. Calls run GET first, DELETE last, and for each route the other
organisation's credentials before the own one's (the own buyer's DELETE removes the webhook).
The words it submits are phrases the privacy sweep already looks for (SUBMITTED_BY_TESTS).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pymongo import MongoClient

from hotline.cli.engines.local import LocalSystem
from hotline.cli.engines.process import free_port
from hotline.cli.http import tls
from hotline.cli.reports import seal_report
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.keys import b64decode_strict, key_id
from hotline.shared.messages import message_routing
from hotline.shared.pow import solve
from hotline.shared.receipt import DerivedReceipt, derive_receipt
from hotline.shared.roles import Role
from hotline.shared.store import Databases
from hotline.shared.tlog.note import Cosigner, format_note, parse_note
from tests.support.oidc_clients import client_token, password_client
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.waiting import unless_busy, wait_for

pytestmark = pytest.mark.timeout(600)  # the session's engines may start first: 1-2 minutes

Route = tuple[str, str]  # (method, path) as the OpenAPI document names it
Document = dict[str, Any]
WAIT = 60.0

# The credentials. The first five are no valid token; in TABLE they share the column "bad".
ANONYMOUS = "anonymous"
GARBAGE = "garbage"
EXPIRED = "expired"
FOREIGN_SIGNED = "foreign-signed"
WRONG_AUDIENCE = "wrong-audience"
NOT_VALID = (ANONYMOUS, GARBAGE, EXPIRED, FOREIGN_SIGNED, WRONG_AUDIENCE)
ADMIN = "admin"  # platform-admin
OPERATOR = "operator"  # triage-analyst
AUDITOR = "auditor"  # compliance-officer
BUYER = "buyer"  # of org A, which received the case
OTHER_BUYER = "other-buyer"  # of org B
MANAGER = "manager"  # factory-manager of F, the case's factory
OTHER_MANAGER = "other-manager"  # factory-manager of G
BAD = "bad"  # TABLE's column for every credential of NOT_VALID
COLUMNS = (BAD, ADMIN, OPERATOR, AUDITOR, BUYER, OTHER_BUYER, MANAGER, OTHER_MANAGER)
# The order of the calls of one route: the own organisation's last (see the docstring).
CALL_ORDER = (*NOT_VALID, ADMIN, OPERATOR, AUDITOR, OTHER_BUYER, OTHER_MANAGER, BUYER, MANAGER)
OTHER_ORGS = (OTHER_BUYER, OTHER_MANAGER)
# Why a route that takes a token refuses each credential that is none (the 401's detail): a
# 401 for another reason would not test what its name says (an expired token refused for
# its audience, say).
REFUSED_BECAUSE = {
    ANONYMOUS: "bearer token required",
    GARBAGE: "malformed token",
    EXPIRED: "token expired",
    FOREIGN_SIGNED: "token signature invalid",
    WRONG_AUDIENCE: "token not issued for this service",
}

# What each (route, credential) answers. Reading a row: "bad" is every credential that is no
# valid token (401 on a route that takes one, the route's own answer on a public one), then
# each role; 403 is a role the route does not admit, 404 another organisation's object.
# fmt: off
TABLE: dict[str, dict[Route, tuple[int, int, int, int, int, int, int, int]]] = {
    "intake": {
        #                                          bad  admin oper audit buyer b-oth mgr m-oth
        ("GET", "/api/factories"):                 (200, 200, 200, 200, 200, 200, 200, 200),
        ("GET", "/api/challenge"):                 (200, 200, 200, 200, 200, 200, 200, 200),
        ("GET", "/api/recipients/{factory}"):      (200, 200, 200, 200, 200, 200, 200, 200),
        ("POST", "/api/reports"):                  (201, 201, 201, 201, 201, 201, 201, 201),
        ("POST", "/api/status"):                   (200, 200, 200, 200, 200, 200, 200, 200),
        ("POST", "/api/answers"):                  (201, 201, 201, 201, 201, 201, 201, 201),
        ("GET", "/api/cases/{case_id}/attachments"): (401, 403, 200, 403, 403, 403, 403, 403),
    },
    "triage": {
        #                                          bad  admin oper audit buyer b-oth mgr m-oth
        ("GET", "/api/cases"):                     (401, 403, 200, 403, 403, 403, 403, 403),
        ("GET", "/api/cases/{case_id}"):           (401, 403, 200, 403, 403, 403, 403, 403),
        ("GET", "/api/cases/{case_id}/reply-key"): (401, 403, 200, 403, 403, 403, 403, 403),
        ("POST", "/api/cases/{case_id}/messages"): (401, 403, 201, 403, 403, 403, 403, 403),
        ("GET", "/api/cases/{case_id}/messages"):  (401, 403, 200, 403, 403, 403, 403, 403),
        ("POST", "/api/cases/{case_id}/claim"):    (401, 403, 200, 403, 403, 403, 403, 403),
        ("POST", "/api/cases/{case_id}/status"):   (401, 403, 200, 403, 403, 403, 403, 403),
        ("GET", "/api/cases/{case_id}/history"):   (401, 403, 200, 403, 403, 403, 403, 403),
        ("GET", "/api/cases/{case_id}/note-keys"): (401, 403, 200, 403, 403, 403, 403, 403),
        ("GET", "/api/stats"):                     (401, 403, 200, 200, 403, 403, 403, 403),
        ("GET", "/api/stats/factory"):             (401, 403, 403, 403, 403, 403, 200, 403),
        ("PUT", "/api/admin/retention/{org}"):     (401, 200, 403, 403, 403, 403, 403, 403),
        ("GET", "/api/admin/retention/{org}"):     (401, 200, 403, 403, 403, 403, 403, 403),
        ("GET", "/api/admin/factories"):           (401, 200, 403, 403, 403, 403, 403, 403),
        ("POST", "/api/admin/factories"):          (401, 201, 403, 403, 403, 403, 403, 403),
        ("POST", "/api/admin/buyers"):             (401, 201, 403, 403, 403, 403, 403, 403),
        ("POST", "/api/admin/buyers/{buyer_id}/keys"): (401, 201, 403, 403, 403, 403, 403, 403),
        ("PUT", "/api/admin/buyers/{buyer_id}/schedule"): (401, 200, 403, 403, 403, 403, 403, 403),
        ("POST", "/api/admin/links"):              (401, 201, 403, 403, 403, 403, 403, 403),
        ("POST", "/api/admin/operator-keys"):      (401, 201, 403, 403, 403, 403, 403, 403),
    },
    "notify": {
        #                                          bad  admin oper audit buyer b-oth mgr m-oth
        ("GET", "/api/digests"):                   (401, 403, 403, 403, 200, 200, 403, 403),
        ("POST", "/api/digests/issue"):            (401, 403, 403, 403, 201, 204, 403, 403),
        ("GET", "/vkey"):                          (200, 200, 200, 200, 200, 200, 200, 200),
        ("GET", "/api/operator-keys"):             (401, 403, 403, 403, 200, 200, 403, 403),
        ("POST", "/api/cases/{case_id}/questions"): (401, 403, 403, 403, 201, 404, 403, 403),
        ("POST", "/api/cases/{case_id}/ack"):      (401, 403, 403, 403, 201, 404, 403, 403),
        ("GET", "/api/webhooks"):                  (401, 403, 403, 403, 200, 200, 403, 403),
        ("POST", "/api/webhooks"):                 (401, 403, 403, 403, 201, 201, 403, 403),
        ("DELETE", "/api/webhooks/{endpoint_id}"): (401, 403, 403, 403, 204, 404, 403, 403),
        ("GET", "/api/webhooks/{endpoint_id}/deliveries"): (401, 403, 403, 403, 200, 404, 403, 403),
        ("POST", "/api/webhooks/{endpoint_id}/redeliver"): (401, 403, 403, 403, 202, 404, 403, 403),
    },
    "audit-log": {
        # Public: no token is asked for, and none changes an answer. A cosignature is admitted
        # by the witness key that signed it, never by a token: this module's key is no witness.
        #                                          bad  admin oper audit buyer b-oth mgr m-oth
        ("GET", "/checkpoint"):                    (200, 200, 200, 200, 200, 200, 200, 200),
        ("GET", "/tile/{path}"):                   (200, 200, 200, 200, 200, 200, 200, 200),
        ("GET", "/vkey"):                          (200, 200, 200, 200, 200, 200, 200, 200),
        ("POST", "/cosignature"):                  (403, 403, 403, 403, 403, 403, 403, 403),
        ("GET", "/api/entries"):                   (200, 200, 200, 200, 200, 200, 200, 200),
        ("GET", "/api/key-proofs"):                (200, 200, 200, 200, 200, 200, 200, 200),
    },
}
# fmt: on

# Where each service's document is (intake keeps its pages' paths free of it).
DOCUMENTS = {
    "intake": "/api/openapi.json",
    "triage": "/openapi.json",
    "notify": "/openapi.json",
    "audit-log": "/openapi.json",
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
METHOD_ORDER = {"GET": 0, "PUT": 1, "POST": 1, "PATCH": 1, "DELETE": 2}


# --- the credentials -------------------------------------------------------------------------


class Credentials:
    """The Authorization header of each credential. Role tokens come from the session's
    token cache (tests/support/tokens.py), the other client's is kept here likewise (a slow
    run outlives a 300 s token); the foreign-signed one is the admin's claims, re-signed."""

    def __init__(
        self, settings: Settings, users: dict[str, str], expired: str, other_audience: str
    ) -> None:
        self.settings = settings
        self.users = users  # credential -> user name (= password)
        self.expired = expired
        self.other_audience = other_audience  # the client whose tokens name no service
        self.forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._wrong_audience: str | None = None

    def header(self, credential: str) -> dict[str, str]:
        if credential == ANONYMOUS:
            return {}
        return {"Authorization": f"Bearer {self.token(credential)}"}

    def token(self, credential: str) -> str:
        if credential == GARBAGE:
            return "not-a-jwt"
        if credential == EXPIRED:
            return self.expired
        if credential == FOREIGN_SIGNED:
            real = self.token(ADMIN)
            kid = jwt.get_unverified_header(real)["kid"]
            return jwt.encode(claims_of(real), self.forger, algorithm="RS256", headers={"kid": kid})
        if credential != WRONG_AUDIENCE:
            user = self.users[credential]
            return password_token(self.settings, user, user)  # reused while it has 150 s left
        cached = self._wrong_audience
        if cached is None or claims_of(cached)["exp"] - time.time() < 60:
            cached = client_token(self.settings, self.other_audience, self.users[ADMIN])
            self._wrong_audience = cached
        return cached


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# --- the module's world ----------------------------------------------------------------------


@dataclass
class World:
    """The module's organisations and objects, and one HTTP client for every call."""

    settings: Settings
    http: httpx.Client
    credentials: Credentials
    factory: str  # F: the case's factory, the manager's
    other_factory: str  # G: the other manager's, the other buyer's
    buyer: str  # A: linked to F
    spare_buyer: str  # C: the admin's key rotation and schedule act on it
    case_id: str
    worker: DerivedReceipt  # what the case's receipt derives
    webhook_id: str  # A's
    operator_key_id: str
    witness: Cosigner = field(default_factory=lambda: Cosigner.generate("matrix.test/witness"))

    def url(self, service: str) -> str:
        return {
            "intake": self.settings.intake_url,
            "triage": self.settings.triage_url,
            "notify": self.settings.notify_url,
            "audit-log": self.settings.audit_url,
        }[service]

    def get(self, service: str, path: str, credential: str = ANONYMOUS, **params: str) -> Any:
        response = self.http.get(
            self.url(service) + path, params=params, headers=self.credentials.header(credential)
        )
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json() if "json" in response.headers["content-type"] else response.text

    def path_value(self, name: str) -> str:
        values: dict[str, Callable[[], str]] = {
            "case_id": lambda: self.case_id,
            "factory": lambda: self.factory,
            "org": lambda: self.factory,
            "buyer_id": lambda: self.spare_buyer,
            "endpoint_id": lambda: self.webhook_id,
            "path": self.tile_path,
        }
        assert name in values, f"no value for path parameter {{{name}}}: add one to path_value"
        return values[name]()

    def own_names(self) -> dict[str, str]:
        """What another organisation must never be shown: org A's objects."""
        return {"the case id": self.case_id, "A's webhook": self.webhook_id, "org A": self.buyer}

    # What some bodies and paths are made of, made anew for each call.

    def solved(self) -> dict[str, str]:
        issued = self.get("intake", "/api/challenge")
        return {
            "challenge": issued["challenge"],
            "solution": solve(issued["challenge"], issued["difficulty"]),
        }

    def report(self) -> Document:
        sealed = seal_report(
            self.settings.intake_url, self.factory, ["wages"], "wages unpaid since May"
        )
        body: Document = sealed.report.model_dump(mode="json")
        return body

    def answer(self) -> Document:
        """The worker's answer, sealed to the operator keys intake lists for the factory."""
        listed = self.get("intake", f"/api/recipients/{self.factory}")["identity"]
        operators = {kid: b64decode_strict(public) for kid, public in listed.items()}
        message_id = str(uuid.uuid4())
        envelope = seal_envelope(
            b"wages withheld for two months",
            case_id=self.case_id,
            kind="content",
            routing=message_routing(message_id, "answer"),
            recipients=operators,
        )
        return {
            "lookup_token": self.worker.lookup_token.hex(),
            "message_id": message_id,
            "envelope": envelope.model_dump(mode="json"),
            "pow": self.solved(),
        }

    def reply(self) -> Document:
        """An operator's reply, sealed to the case's reply key."""
        message_id = str(uuid.uuid4())
        reply_key = self.worker.reply_public
        envelope = seal_envelope(
            b"We have your report. We will visit the factory this week.",
            case_id=self.case_id,
            kind="content",
            routing=message_routing(message_id, "reply"),
            recipients={key_id(reply_key): reply_key},
        )
        return {"message_id": message_id, "kind": "reply", "envelope": envelope.model_dump()}

    def question(self) -> Document:
        """A buyer's question, sealed to exactly the operator keys notify lists."""
        listed = self.get("notify", "/api/operator-keys", BUYER)["keys"]
        message_id = str(uuid.uuid4())
        envelope = seal_envelope(
            b"How many workers are on the night shift?",
            case_id=self.case_id,
            kind="content",
            routing=message_routing(message_id, "question"),
            recipients={kid: b64decode_strict(public) for kid, public in listed.items()},
        )
        return {"message_id": message_id, "kind": "question", "envelope": envelope.model_dump()}

    def tile_path(self) -> str:
        """The first level-0 tile of the current tree (partial while the tree is small)."""
        size = int(self.get("audit-log", "/checkpoint").splitlines()[1])
        return "0/000" if size >= 256 else f"0/000.p/{size}"

    def cosigned_checkpoint(self) -> str:
        """The latest checkpoint, cosigned by this module's key (which is no witness)."""
        text, _ = parse_note(self.get("audit-log", "/checkpoint"))
        return format_note(text, [self.witness.cosign(text, int(time.time()))])


@dataclass(frozen=True)
class Call:
    """What one request sends besides its route and credential."""

    params: dict[str, str] | None = None
    json: Any = None
    text: str | None = None  # a text/plain body


# The query and body of each route that takes one (every other route is called bare).
REQUESTS: dict[tuple[str, str, str], Callable[[World], Call]] = {
    ("intake", "GET", "/api/factories"): lambda w: Call(params={"q": w.factory}),
    ("intake", "POST", "/api/reports"): lambda w: Call(json=w.report()),
    ("intake", "POST", "/api/status"): lambda w: Call(
        json={"lookup_token": w.worker.lookup_token.hex(), "pow": w.solved()}
    ),
    ("intake", "POST", "/api/answers"): lambda w: Call(json=w.answer()),
    ("triage", "GET", "/api/cases"): lambda w: Call(params={"factory": w.factory}),
    ("triage", "POST", "/api/cases/{case_id}/messages"): lambda w: Call(json=w.reply()),
    ("triage", "POST", "/api/cases/{case_id}/claim"): lambda w: Call(json={"force": False}),
    ("triage", "POST", "/api/cases/{case_id}/status"): lambda w: Call(
        json={"status": "acknowledged"}
    ),
    ("triage", "GET", "/api/stats"): lambda w: Call(params={"factory": w.factory}),
    ("triage", "GET", "/api/stats/factory"): lambda w: Call(params={"factory": w.factory}),
    ("triage", "PUT", "/api/admin/retention/{org}"): lambda w: Call(
        json={"identity_days": 30, "content_days": 365}
    ),
    ("triage", "POST", "/api/admin/factories"): lambda w: Call(
        json={"code": unique_factory_code(), "name": "Matrix Toys", "country": "VN"}
    ),
    ("triage", "POST", "/api/admin/buyers"): lambda w: Call(
        json={"buyer_id": unique_buyer_id(), "name": "Matrix", "public_key": Party.new().public_b64}
    ),
    ("triage", "POST", "/api/admin/buyers/{buyer_id}/keys"): lambda w: Call(
        json={"public_key": Party.new().public_b64}
    ),
    ("triage", "PUT", "/api/admin/buyers/{buyer_id}/schedule"): lambda w: Call(
        json={"schedule": "weekly"}
    ),
    ("triage", "POST", "/api/admin/links"): lambda w: Call(
        json={"buyer_id": w.spare_buyer, "factory": w.other_factory}
    ),
    ("triage", "POST", "/api/admin/operator-keys"): lambda w: Call(
        json={"public_key": Party.new().public_b64}
    ),
    ("notify", "POST", "/api/cases/{case_id}/questions"): lambda w: Call(json=w.question()),
    ("notify", "POST", "/api/webhooks"): lambda w: Call(json={"url": unreachable_hook()}),
    ("notify", "POST", "/api/webhooks/{endpoint_id}/redeliver"): lambda w: Call(
        json={"dead": True}
    ),
    ("audit-log", "GET", "/api/entries"): lambda w: Call(params={"case": w.case_id}),
    ("audit-log", "GET", "/api/key-proofs"): lambda w: Call(params={"key": w.operator_key_id}),
    ("audit-log", "POST", "/cosignature"): lambda w: Call(text=w.cosigned_checkpoint()),
}


def bare(_: World) -> Call:
    return Call()


def unreachable_hook() -> str:
    """An HTTPS URL on the loopback (allowed in development) where nothing listens: what is
    delivered there fails, harming no receiver of another module."""
    return f"https://127.0.0.1:{free_port()}/matrix/{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def world(system: LocalSystem) -> Iterator[World]:
    settings = system.settings
    mongo_client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with (
        mongo_client,
        password_client(
            settings,
            audiences=["hotline-intake", "hotline-triage", "hotline-notify", "hotline-audit-log"],
            token_lifespan=1,
        ) as short_lived,
        # Tokens for Keycloak's own account client: a real audience, of no service.
        password_client(settings, audiences=["account"]) as other_audience,
        httpx.Client(timeout=60, verify=tls()) as http,
    ):
        # First, so that it has expired by the time the setup below is done.
        expired = client_token(settings, short_lived, "admin")
        admin = AdminApi(settings)
        operator_key = Party.new()
        admin.created("operator-keys", {"public_key": operator_key.public_b64})
        factory, other_factory = unique_factory_code(), unique_factory_code()
        for code in (factory, other_factory):
            admin.created("factories", {"code": code, "name": "Matrix Toys", "country": "VN"})
        buyer, other_buyer, spare_buyer = unique_buyer_id(), unique_buyer_id(), unique_buyer_id()
        for org in (buyer, other_buyer, spare_buyer):
            admin.created(
                "buyers", {"buyer_id": org, "name": "Matrix", "public_key": Party.new().public_b64}
            )
        admin.created("links", {"buyer_id": buyer, "factory": factory})
        admin.created("links", {"buyer_id": other_buyer, "factory": other_factory})
        users = {
            ADMIN: "admin",
            OPERATOR: "operator",
            AUDITOR: "auditor",
            BUYER: add_user(settings, Role.BUYER, buyer),
            OTHER_BUYER: add_user(settings, Role.BUYER, other_buyer),
            MANAGER: add_user(settings, Role.FACTORY_MANAGER, factory),
            OTHER_MANAGER: add_user(settings, Role.FACTORY_MANAGER, other_factory),
        }
        credentials = Credentials(settings, users, expired, other_audience)

        sealed = seal_report(
            settings.intake_url,
            factory,
            ["wages"],
            "wages unpaid since May",
            identity="Li, line 4",
        )
        submitted = http.post(
            f"{settings.intake_url}/api/reports", json=sealed.report.model_dump(mode="json")
        )
        assert submitted.status_code == 201, submitted.text
        case_id = sealed.report.case_id
        hook = http.post(
            f"{settings.notify_url}/api/webhooks",
            json={"url": unreachable_hook()},
            headers=credentials.header(BUYER),
        )
        assert hook.status_code == 201, hook.text
        mongo = Databases(mongo_client, settings.mongo_db)
        wait_for(
            lambda: mongo.triage_cases.find_one({"_id": case_id}),
            timeout=WAIT,
            what="the case at triage",
        )
        wait_for(
            lambda: mongo.notify_items.find_one({"_id": f"{buyer}:{case_id}"}),
            timeout=WAIT,
            what="the case among buyer A's items",
        )
        wait_for(
            lambda: httpx.get(f"{settings.audit_url}/checkpoint", verify=tls()).status_code == 200,
            timeout=WAIT,
            what="a checkpoint of the audit log",
        )
        exp = claims_of(expired)["exp"]
        wait_for(
            lambda: time.time() > exp + settings.token_leeway + 1,
            timeout=settings.token_leeway + WAIT,
            what="the short-lived token to expire, the services' leeway included",
        )
        yield World(
            settings=settings,
            http=http,
            credentials=credentials,
            factory=factory,
            other_factory=other_factory,
            buyer=buyer,
            spare_buyer=spare_buyer,
            case_id=case_id,
            worker=derive_receipt(sealed.receipt),
            webhook_id=hook.json()["id"],
            operator_key_id=operator_key.key_id,
        )


# --- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    route: Route
    credential: str
    expected: int
    got: int
    detail: str


def documented_routes(document: Document) -> list[Route]:
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ]


def call(
    world: World, service: str, route: Route, credential: str, build: Callable[[World], Call]
) -> httpx.Response:
    method, template = route
    path = template
    for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
        path = path.replace(f"{{{name}}}", world.path_value(name))
    headers = world.credentials.header(credential)

    def send() -> httpx.Response:
        request = build(world)  # afresh each time: a refused lookup has spent its challenge
        return world.http.request(
            method,
            world.url(service) + path,
            params=request.params,
            json=request.json,
            content=request.text.encode() if request.text is not None else None,
            headers=headers
            | ({"Content-Type": "text/plain; charset=utf-8"} if request.text is not None else {}),
        )

    # Intake's receipt lookups of all clients together are capped per second: a capacity
    # answer, not an authorisation one, so the call is made again once the second has passed.
    return unless_busy(send, what=f"{method} {path}")


def judged(
    world: World, route: Route, credential: str, row: dict[str, int], response: httpx.Response
) -> Mismatch | None:
    """What is wrong with the answer, if anything: another status than the row's; a 401 for
    another reason than the credential's, or without its Bearer challenge (RFC 6750); a 2xx
    of a route that takes a token naming org A's objects to another organisation (a public
    route answers anyone who holds what it asks for, such as the receipt's lookup token)."""
    expected = row[BAD if credential in NOT_VALID else credential]
    detail = response.text[:160].replace("\n", " ")
    if response.status_code != expected:
        return Mismatch(route, credential, expected, response.status_code, detail)
    if expected == 401 and credential in NOT_VALID:
        reason = response.json().get("detail")
        if reason != REFUSED_BECAUSE[credential]:
            return Mismatch(route, credential, expected, 401, f"refused because: {reason}")
        if not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            return Mismatch(route, credential, expected, 401, "no WWW-Authenticate: Bearer")
    public = row[BAD] < 400
    if credential in OTHER_ORGS and response.is_success and not public:
        for what, name in world.own_names().items():
            if name in response.text:
                return Mismatch(route, credential, expected, response.status_code, f"names {what}")
    return None


def mismatch_table(service: str, mismatches: list[Mismatch], calls: int) -> str:
    lines = [
        f"{service}: {len(mismatches)} of {calls} calls did not answer as TABLE says",
        f"  {'route':<50} {'credential':<15} {'expected':>8} {'got':>5}  answer",
    ]
    for m in mismatches:
        route = f"{m.route[0]} {m.route[1]}"
        lines.append(f"  {route:<50} {m.credential:<15} {m.expected:>8} {m.got:>5}  {m.detail}")
    return "\n".join(lines)


@pytest.mark.parametrize("service", list(TABLE))
def test_every_route_answers_every_credential_as_the_table_says(world: World, service: str) -> None:
    document = world.get(service, DOCUMENTS[service])
    documented = documented_routes(document)
    expected = TABLE[service]
    missing = [f"{m} {p}" for m, p in documented if (m, p) not in expected]
    stale = [f"{m} {p}" for m, p in expected if (m, p) not in documented]
    assert not missing, f"{service}: routes with no row in TABLE (add one): {missing}"
    assert not stale, f"{service}: rows of TABLE the service no longer has: {stale}"

    mismatches: list[Mismatch] = []
    calls = 0
    for route in sorted(expected, key=lambda route: METHOD_ORDER[route[0]]):
        row = dict(zip(COLUMNS, expected[route], strict=True))
        build = REQUESTS.get((service, *route), bare)
        for credential in CALL_ORDER:
            response = call(world, service, route, credential, build)
            calls += 1
            found = judged(world, route, credential, row, response)
            if found is not None:
                mismatches.append(found)
    assert not mismatches, mismatch_table(service, mismatches, calls)
