"""OIDC clients of the session's realm made for one test module, beside the realm's own.

A test that needs a real Keycloak token the services must refuse makes one here: a token of
a client whose tokens name another audience than the services', or whose tokens live one second
(expired once its `exp` and the services' leeway have passed). Each client is public, allows
the password grant (as `hotline-cli` does locally) and is removed when the module is done.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from hotline.cli.http import tls
from hotline.shared.config import Settings
from tests.support.realm import admin_headers


def _audience_mapper(audience: str) -> dict[str, Any]:
    return {
        "name": f"audience {audience}",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {"included.custom.audience": audience, "access.token.claim": "true"},
    }


# The `org` claim, as the realm's clients map it (deploy/keycloak/hotline-realm.json).
_ORG_MAPPER: dict[str, Any] = {
    "name": "org",
    "protocol": "openid-connect",
    "protocolMapper": "oidc-usermodel-attribute-mapper",
    "config": {
        "user.attribute": "org",
        "claim.name": "org",
        "jsonType.label": "String",
        "access.token.claim": "true",
    },
}


@contextlib.contextmanager
def password_client(
    settings: Settings, *, audiences: Sequence[str], token_lifespan: int | None = None
) -> Iterator[str]:
    """A client whose access tokens name `audiences` (none: the tokens have no `aud` at all)
    and carry `org`, living `token_lifespan` seconds if given (else the realm's); its id."""
    client_id = f"t-client-{uuid.uuid4().hex[:8]}"
    attributes = {} if token_lifespan is None else {"access.token.lifespan": str(token_lifespan)}
    admin = f"{settings.keycloak_url}/admin/realms/{settings.keycloak_realm}"
    created = httpx.post(
        f"{admin}/clients",
        headers=admin_headers(settings),
        json={
            "clientId": client_id,
            "enabled": True,
            "publicClient": True,
            "protocol": "openid-connect",
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": True,
            "attributes": attributes,
            "protocolMappers": [_ORG_MAPPER, *map(_audience_mapper, audiences)],
        },
        timeout=30,
        verify=tls(),
    ).raise_for_status()
    internal_id = created.headers["Location"].rsplit("/", 1)[-1]
    try:
        yield client_id
    finally:
        httpx.delete(
            f"{admin}/clients/{internal_id}",
            headers=admin_headers(settings),
            timeout=30,
            verify=tls(),
        ).raise_for_status()


def client_token(settings: Settings, client_id: str, user: str) -> str:
    """An access token of `user` (password = user name) by the password grant on `client_id`."""
    response = httpx.post(
        settings.token_url,
        data={"grant_type": "password", "client_id": client_id, "username": user, "password": user},
        timeout=30,
        verify=tls(),
    ).raise_for_status()
    token: str = response.json()["access_token"]
    return token
