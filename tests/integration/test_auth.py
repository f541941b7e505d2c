"""Offline JWT validation (hotline.shared.auth) against the real local Keycloak.

Tokens come from Keycloak (password grant on `hotline-cli`, local realm) and the JWKS from its
certs endpoint. To check `iss`, `aud`, `exp` and `typ` on tokens whose signature IS valid, the
test registers a passive RSA key of its own in the realm through the admin API: Keycloak
publishes it in the JWKS (passive keys verify, they never sign), so the test can sign any
claims with it. The key is removed afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from hotline.cli.engines import keycloak
from hotline.cli.engines.process import ManagedProcess
from hotline.cli.http import tls
from hotline.shared.auth import (
    CurrentPrincipal,
    Principal,
    TokenVerifier,
    install_token_verifier,
    require_org_match,
    require_role,
)
from hotline.shared.config import Settings
from tests.support.realm import admin_headers

AUDIENCE = "hotline-intake"


def test_pom_pins_the_module_version() -> None:
    assert f"<keycloak.version>{keycloak.VERSION}</keycloak.version>" in keycloak.POM.read_text()


def test_production_realm_has_no_demo_users_and_device_grant_only() -> None:
    realm = json.loads(keycloak.REALM_FILE.read_text())
    assert "users" not in realm
    assert realm["bruteForceProtected"] is True
    assert realm["accessTokenLifespan"] <= 300
    assert {r["name"] for r in realm["roles"]["realm"]} >= {
        "triage-analyst",
        "buyer",
        "compliance-officer",
        "factory-manager",
        "platform-admin",
    }
    (cli,) = [c for c in realm["clients"] if c["clientId"] == "hotline-cli"]
    assert cli["publicClient"] is True
    assert cli["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"
    assert cli["standardFlowEnabled"] is False
    assert cli["directAccessGrantsEnabled"] is False
    assert cli["implicitFlowEnabled"] is False


def test_cli_client_starts_a_device_login(
    keycloak_engine: ManagedProcess, test_settings: Settings
) -> None:
    response = httpx.post(
        test_settings.device_auth_url, data={"client_id": "hotline-cli"}, verify=tls()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["device_code"] and body["user_code"]
    assert body["verification_uri"].startswith(test_settings.keycloak_url)
    health = httpx.get(f"{test_settings.keycloak_url}/health/ready", verify=tls())
    assert health.status_code == 200


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(keycloak_engine: ManagedProcess, test_settings: Settings) -> dict[str, str]:
    return {
        user: keycloak.password_token(test_settings, user, user) for user in ("operator", "buyer1")
    }


@dataclass
class RealmKey:
    private_key: rsa.RSAPrivateKey
    kid: str


@contextlib.contextmanager
def passive_realm_key(settings: Settings) -> Iterator[RealmKey]:
    """Register a passive RS256 key of the test's own in the realm; Keycloak publishes it."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    admin = f"{settings.keycloak_url}/admin/realms/{settings.keycloak_realm}"
    headers = admin_headers(settings)
    realm_id = httpx.get(admin, headers=headers, verify=tls()).raise_for_status().json()["id"]
    created = httpx.post(
        f"{admin}/components",
        headers=headers,
        json={
            "name": f"test-passive-{uuid.uuid4().hex[:8]}",
            "providerId": "rsa",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {
                "priority": ["-100"],
                "enabled": ["true"],
                "active": ["false"],
                "algorithm": ["RS256"],
                "privateKey": [pem],
            },
        },
        verify=tls(),
    ).raise_for_status()
    component_id = created.headers["Location"].rsplit("/", 1)[-1]
    try:
        keys = (
            httpx.get(f"{admin}/keys", headers=headers, verify=tls())
            .raise_for_status()
            .json()["keys"]
        )
        (kid,) = [k["kid"] for k in keys if k.get("providerId") == component_id]
        yield RealmKey(private_key, kid)
    finally:
        httpx.delete(
            f"{admin}/components/{component_id}", headers=admin_headers(settings), verify=tls()
        ).raise_for_status()


@pytest.fixture(scope="module")
def realm_test_key(keycloak_engine: ManagedProcess, test_settings: Settings) -> Iterator[RealmKey]:
    with passive_realm_key(test_settings) as key:
        yield key


@dataclass
class Harness:
    """A tiny FastAPI app guarded by a verifier, and how many JWKS fetches it made."""

    client: httpx.AsyncClient
    verifier: TokenVerifier
    keycloak_client: httpx.AsyncClient
    jwks_requests: list[str]

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.verifier.aclose()
        await self.keycloak_client.aclose()

    async def me(self, token: str | None) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return await self.client.get("/me", headers=headers)


def build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {
            "subject": principal.subject,
            "roles": sorted(principal.roles),
            "org": principal.org,
            "client": principal.client,
        }

    @app.get("/triage", dependencies=[Depends(require_role("triage-analyst"))])
    async def triage() -> dict[str, str]:
        return {"ok": "triage"}

    @app.get("/buyers/{org}/cases")
    async def buyer_cases(
        org: str, principal: Annotated[Principal, Depends(require_role("buyer"))]
    ) -> dict[str, str]:
        require_org_match(principal, org)
        return {"ok": org}

    return app


async def make_harness(settings: Settings, audience: str = AUDIENCE) -> Harness:
    fetched: list[str] = []

    async def count(request: httpx.Request) -> None:
        if str(request.url) == settings.jwks_url:
            fetched.append(str(request.url))

    keycloak_client = httpx.AsyncClient(timeout=10, event_hooks={"request": [count]}, verify=tls())
    verifier = TokenVerifier(settings, audience, http_client=keycloak_client)
    app = build_app()
    install_token_verifier(app, verifier)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    return Harness(client, verifier, keycloak_client, fetched)


@pytest.fixture
async def harness(
    keycloak_engine: ManagedProcess, test_settings: Settings
) -> AsyncIterator[Harness]:
    made = await make_harness(test_settings)
    try:
        yield made
    finally:
        await made.aclose()


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def good_claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.keycloak_issuer,
        "aud": ["hotline-intake", "hotline-triage"],
        "sub": str(uuid.uuid4()),
        "typ": "Bearer",
        "azp": "hotline-cli",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["buyer"]},
        "org": "buyer-1",
    }
    claims.update(changes)
    return claims


# --- real Keycloak tokens ------------------------------------------------------------------


async def test_operator_token_passes_with_roles(harness: Harness, tokens: dict[str, str]) -> None:
    response = await harness.me(tokens["operator"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["roles"] == ["triage-analyst"]
    assert body["org"] is None
    assert body["client"] == "hotline-cli"
    assert body["subject"] == claims_of(tokens["operator"])["sub"]
    assert (
        await harness.client.get("/triage", headers=bearer(tokens["operator"]))
    ).status_code == 200


async def test_buyer_token_carries_org(harness: Harness, tokens: dict[str, str]) -> None:
    claims = claims_of(tokens["buyer1"])
    for audience in ("hotline-intake", "hotline-triage", "hotline-notify", "hotline-audit-log"):
        assert audience in claims["aud"]
    body = (await harness.me(tokens["buyer1"])).json()
    assert body["roles"] == ["buyer"]
    assert body["org"] == "buyer-1"
    own = await harness.client.get("/buyers/buyer-1/cases", headers=bearer(tokens["buyer1"]))
    assert own.status_code == 200
    other = await harness.client.get("/buyers/buyer-2/cases", headers=bearer(tokens["buyer1"]))
    assert other.status_code == 403


async def test_missing_role_is_403(harness: Harness, tokens: dict[str, str]) -> None:
    response = await harness.client.get("/triage", headers=bearer(tokens["buyer1"]))
    assert response.status_code == 403
    assert "triage-analyst" in response.json()["detail"]
    as_operator = await harness.client.get(
        "/buyers/buyer-1/cases", headers=bearer(tokens["operator"])
    )
    assert as_operator.status_code == 403


async def test_missing_token_is_401_with_challenge(harness: Harness) -> None:
    response = await harness.me(None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    garbage = await harness.me("not-a-jwt")
    assert garbage.status_code == 401
    assert garbage.headers["WWW-Authenticate"].startswith("Bearer")
    assert "not-a-jwt" not in garbage.text


async def test_wrong_signature_same_kid_is_401(harness: Harness, tokens: dict[str, str]) -> None:
    token = tokens["operator"]
    kid = jwt.get_unverified_header(token)["kid"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sign(claims_of(token), forger, kid)
    response = await harness.me(forged)
    assert response.status_code == 401
    assert response.json()["detail"] == "token signature invalid"
    assert forged not in response.text


async def test_tampered_claims_are_401(harness: Harness, tokens: dict[str, str]) -> None:
    head, _, signature = tokens["buyer1"].split(".")
    claims = claims_of(tokens["buyer1"]) | {"realm_access": {"roles": ["platform-admin"]}}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = await harness.me(f"{head}.{payload}.{signature}")
    assert response.status_code == 401


async def test_real_token_from_another_issuer_is_401(
    harness: Harness, test_settings: Settings, keycloak_engine: ManagedProcess
) -> None:
    # With hostname-strict off, Keycloak names itself after the Host header: same realm and
    # key, valid signature, but an issuer this service does not trust.
    host = f"localhost:{test_settings.keycloak_port}"
    response = httpx.post(
        test_settings.token_url,
        headers={"Host": host},
        data={
            "grant_type": "password",
            "client_id": "hotline-cli",
            "username": "operator",
            "password": "operator",
        },
        verify=tls(),
    ).raise_for_status()
    token = response.json()["access_token"]
    assert claims_of(token)["iss"] == f"http://{host}/realms/hotline"
    refused = await harness.me(token)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "token from another issuer"


async def test_real_token_for_another_audience_is_401(
    test_settings: Settings, tokens: dict[str, str]
) -> None:
    other = await make_harness(test_settings, audience="hotline-payroll")
    try:
        response = await other.me(tokens["operator"])
        assert response.status_code == 401
        assert response.json()["detail"] == "token not issued for this service"
    finally:
        await other.aclose()


async def test_unknown_kid_refreshes_jwks_exactly_once(
    harness: Harness, tokens: dict[str, str], test_settings: Settings
) -> None:
    assert (await harness.me(tokens["operator"])).status_code == 200
    assert len(harness.jwks_requests) == 1  # first use loads the key set
    assert (await harness.me(tokens["buyer1"])).status_code == 200
    assert len(harness.jwks_requests) == 1  # cached

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(5):  # a flood of made-up key ids
        token = sign(good_claims(test_settings), stranger, kid=uuid.uuid4().hex)
        response = await harness.me(token)
        assert response.status_code == 401
        assert response.json()["detail"] == "token signed by an unknown key"
    assert len(harness.jwks_requests) == 2  # one refresh, then rate-limited


# --- claim checks on validly signed tokens (test key published by Keycloak) ----------------


async def test_key_added_after_caching_is_found_by_one_refresh(
    harness: Harness, tokens: dict[str, str], test_settings: Settings
) -> None:
    assert (await harness.me(tokens["operator"])).status_code == 200
    assert len(harness.jwks_requests) == 1
    with passive_realm_key(test_settings) as new_key:  # a key rotation, seen by Keycloak only
        token = sign(good_claims(test_settings), new_key.private_key, new_key.kid)
        response = await harness.me(token)
        assert response.status_code == 200, response.text
        assert response.json()["org"] == "buyer-1"
        assert len(harness.jwks_requests) == 2
        assert (await harness.me(token)).status_code == 200
        assert len(harness.jwks_requests) == 2


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"iss": "http://evil.example/realms/hotline"}, "token from another issuer"),
        ({"aud": ["hotline-notify", "account"]}, "token not issued for this service"),
        ({"aud": "hotline-cli"}, "token not issued for this service"),
        ({"exp": int(time.time()) - 120}, "token expired"),
        ({"typ": "ID"}, "not an access token"),
        ({"exp": None}, "token invalid: MissingRequiredClaimError"),
    ],
    ids=["issuer", "audience", "audience-str", "expired", "id-token", "no-exp"],
)
async def test_validly_signed_but_wrong_claims_are_401(
    harness: Harness,
    realm_test_key: RealmKey,
    test_settings: Settings,
    changes: dict[str, Any],
    detail: str,
) -> None:
    claims = good_claims(test_settings, **changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    token = sign(claims, realm_test_key.private_key, realm_test_key.kid)
    response = await harness.me(token)
    assert response.status_code == 401
    assert response.json()["detail"] == detail
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_token_is_accepted_within_the_leeway_after_its_exp_and_refused_after(
    keycloak_engine: ManagedProcess, realm_test_key: RealmKey, test_settings: Settings
) -> None:
    """With the default 30 s of clock skew (the test session's services run with 2)."""
    default = Settings.model_fields["token_leeway"].default
    assert default == 30.0
    harness = await make_harness(test_settings.model_copy(update={"token_leeway": default}))
    try:
        for expired_ago, status in ((10, 200), (40, 401)):
            claims = good_claims(test_settings, exp=int(time.time()) - expired_ago)
            token = sign(claims, realm_test_key.private_key, realm_test_key.kid)
            assert (await harness.me(token)).status_code == status, expired_ago
    finally:
        await harness.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
