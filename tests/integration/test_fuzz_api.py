"""Schemathesis against the OpenAPI document of every running service (issue 20, fuzzing).

Each operation of each service gets schema-conforming (positive) and schema-violating
(negative) requests over real HTTP: anonymously on every operation, and with a token of each
role on the operations that take one. Every answer must be no 5xx, a status the document
lists, of a content type it lists, and of the schema it gives for that status.

Each request is generated once and sent as every caller in turn (anonymous, then each role):
generating is most of a run's CPU, and a derandomized run generated the same requests for
each role anyway.

Bounded and deterministic: a fixed number of examples per operation and mode, derandomized
generation, no example database and no shrinking (a failure is reported as generated). A
request that does not answer within REQUEST_TIMEOUT fails the test (a hang is a finding).

State: the roles whose requests are tied to an organisation come from users made for this
module (a buyer and a factory manager of its own registered organisations), and the admin's
path parameters that name an organisation (`org`, `buyer_id`) are pinned to those, so
nothing the fuzzer manages to create or change touches another test's organisations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.roles import Role
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token

EXAMPLES = 15  # per operation and mode: the four services' runs take about a minute in all
REQUEST_TIMEOUT = 30.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Where each service's document is (intake keeps its pages' paths free of it).
DOCUMENTS: dict[str, str] = {
    "intake": "/api/openapi.json",
    "triage": "/openapi.json",
    "notify": "/openapi.json",
    "audit-log": "/openapi.json",
}
ROLES = (
    Role.PLATFORM_ADMIN,
    Role.OPERATOR,
    Role.COMPLIANCE_OFFICER,
    Role.BUYER,
    Role.FACTORY_MANAGER,
)
Operation = APIOperation[Any, Any, Any, Any]
Callers = dict[str, dict[str, str]]  # who calls ("anonymous", a role) -> the headers they send


@dataclass(frozen=True)
class OwnOrgs:
    """This module's factory and buyer (linked), and the users who act for each role."""

    factory: str
    buyer: str
    users: dict[Role, str]  # role -> user name (= password)


@pytest.fixture(scope="module")
def own(system: LocalSystem) -> OwnOrgs:
    admin = AdminApi(system.settings)
    factory, buyer = unique_factory_code(), unique_buyer_id()
    admin.created("factories", {"code": factory, "name": "Fuzzed Toys", "country": "VN"})
    buyer_key = Party.new()
    admin.created("buyers", {"buyer_id": buyer, "name": "Fuzz", "public_key": buyer_key.public_b64})
    admin.created("links", {"buyer_id": buyer, "factory": factory})
    users = {
        Role.PLATFORM_ADMIN: "admin",
        Role.OPERATOR: "operator",
        Role.COMPLIANCE_OFFICER: "auditor",
        Role.BUYER: add_user(system.settings, Role.BUYER, org=buyer),
        Role.FACTORY_MANAGER: add_user(system.settings, Role.FACTORY_MANAGER, org=factory),
    }
    return OwnOrgs(factory, buyer, users)


def service_url(settings: Settings, service: str) -> str:
    return {
        "intake": settings.intake_url,
        "triage": settings.triage_url,
        "notify": settings.notify_url,
        "audit-log": settings.audit_url,
    }[service]


def load_operations(url: str, document: str) -> list[Operation]:
    schema = schemathesis.openapi.from_url(url + document, timeout=REQUEST_TIMEOUT)
    found: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"{url}{document} is not a valid OpenAPI document: {result.err()}")
        found.append(result.ok())
    return found


def takes_token(operation: Operation) -> bool:
    return bool(operation.definition.raw.get("security"))


def pinned_path_parameters(operation: Operation, own: OwnOrgs) -> dict[str, str]:
    """The path parameters that name an organisation, set to this module's own."""
    names = {parameter.name for parameter in operation.path_parameters}
    pins = {"org": own.factory, "buyer_id": own.buyer}
    return {name: value for name, value in pins.items() if name in names}


def fuzz(
    operation: Operation,
    mode: GenerationMode,
    base_url: str,
    callers: Callers,
    own: OwnOrgs,
) -> None:
    """EXAMPLES requests of `mode` to `operation`, each sent as every one of `callers`
    (a token of each role where the operation takes one);
    raises what the first failing check says, noting who called."""
    strategy = operation.as_strategy(
        mode, path_parameters=pinned_path_parameters(operation, own) or None
    )

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,  # no timed assertion: REQUEST_TIMEOUT bounds a request that hangs
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case[Operation]) -> None:
        for caller, headers in callers.items():
            try:
                case.call_and_validate(
                    base_url=base_url,
                    headers=headers or None,
                    checks=CHECKS,
                    timeout=REQUEST_TIMEOUT,
                )
            except (Exception, FailureGroup) as exc:
                exc.add_note(f"sent as {caller}")
                raise

    run()


@pytest.mark.parametrize("service", DOCUMENTS)
def test_every_operation_answers_as_documented(
    system: LocalSystem, own: OwnOrgs, service: str
) -> None:
    base_url = service_url(system.settings, service)
    found = load_operations(base_url, DOCUMENTS[service])
    assert found, f"{service} documents no operation to fuzz"

    def callers_of(operation: Operation) -> Callers:
        callers: Callers = {"anonymous": {}}
        if takes_token(operation):
            for role in ROLES:
                user = own.users[role]
                # 150 s or more left: an operation's requests take well under a minute
                token = password_token(system.settings, user, user)
                callers[role.value] = {"Authorization": f"Bearer {token}"}
        return callers

    failures: list[str] = []
    for operation in found:
        for mode in GenerationMode:
            try:
                fuzz(operation, mode, base_url, callers_of(operation), own)
            except Unsatisfiable:
                # Nothing of the operation can be made invalid (no parameter, or a free
                # string): there is no negative request to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, FailureGroup) as exc:  # report every failing operation
                notes = " ".join(getattr(exc, "__notes__", []))
                failures.append(f"{operation.label} ({mode.value}, {notes}): {exc}"[:3000])
    assert not failures, "\n\n".join(failures)


def test_the_public_log_takes_no_token(system: LocalSystem) -> None:
    """The audit log is public: the fuzzer sends its requests anonymously only."""
    audit = load_operations(system.settings.audit_url, DOCUMENTS["audit-log"])
    assert audit and not [op.label for op in audit if takes_token(op)]


def test_every_error_status_is_documented_as_sent(system: LocalSystem) -> None:
    """The documents describe a 422 as it is sent (`detail` a sentence or a list of
    problems, never FastAPI's shape with `type` and `input`), and 401 where a token is taken."""
    for service, document in DOCUMENTS.items():
        url = service_url(system.settings, service) + document
        spec: dict[str, Any] = httpx.get(url, timeout=REQUEST_TIMEOUT, verify=tls()).json()
        assert "HTTPValidationError" not in spec["components"]["schemas"], service
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                responses = operation["responses"]
                assert {"404", "413", "422", "503"} <= set(responses), (service, method, path)
                assert ("401" in responses) == bool(operation.get("security")), (method, path)


# (A lone surrogate never gets this far: the body is then no status query, a 422.)
@pytest.mark.parametrize("challenge", ["v1.a.b.c.\u00e9", "v1.\u00e9.b.c.d"])
def test_a_challenge_that_is_not_ascii_is_refused_and_no_500(
    system: LocalSystem, challenge: str
) -> None:
    """Found by tests/unit/test_parsers_properties.py: a proof of work whose challenge is not
    ASCII reached the MAC's ASCII encoding or compare_digest and was answered 500. The
    status lookup reads its body itself, so its document has no body for the fuzzer."""
    body = {"lookup_token": "0" * 64, "pow": {"challenge": challenge, "solution": "1"}}
    response = httpx.post(
        f"{system.settings.intake_url}/api/status",
        content=json.dumps(body).encode(),  # escaped, as a client may send it
        headers={"content-type": "application/json"},
        timeout=REQUEST_TIMEOUT,
        verify=tls(),
    )
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["code"] == "bad-challenge"
