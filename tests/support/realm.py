"""Users of the session's realm made for one test module, beside the demo users.

The demo users (admin, buyer1 of org buyer-1, ...) belong to the README walkthrough, which
registers buyer-1 and F-001 in the session's system; a module that needs buyers of its own
creates them here, with an `org` nobody else uses, so the two never collide.
"""

from __future__ import annotations

import os
import uuid

import httpx

from hotline.cli.engines import keycloak
from hotline.shared.config import Settings


def admin_headers(settings: Settings) -> dict[str, str]:
    """A master-realm admin token (the local bootstrap admin)."""
    response = httpx.post(
        f"{settings.keycloak_url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": os.environ.get(
                "KC_BOOTSTRAP_ADMIN_USERNAME", keycloak.LOCAL_ADMIN_USERNAME
            ),
            "password": os.environ.get(
                "KC_BOOTSTRAP_ADMIN_PASSWORD", keycloak.LOCAL_ADMIN_PASSWORD
            ),
        },
        timeout=30,
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def add_user(settings: Settings, role: str, org: str | None = None) -> str:
    """Create a user with realm role `role` (and claim `org`); return its name, which is also
    its password, as for the demo users."""
    name = f"t-{role}-{uuid.uuid4().hex[:8]}"
    admin = f"{settings.keycloak_url}/admin/realms/{settings.keycloak_realm}"
    headers = admin_headers(settings)
    user = {
        "username": name,
        "enabled": True,
        "emailVerified": True,
        "email": f"{name}@hotline.invalid",
        "firstName": "Test",
        "lastName": role.title(),
        "credentials": [{"type": "password", "value": name, "temporary": False}],
        "attributes": {"org": [org]} if org else {},
    }
    created = httpx.post(f"{admin}/users", headers=headers, json=user, timeout=30)
    created.raise_for_status()
    user_id = created.headers["Location"].rsplit("/", 1)[-1]
    realm_role = httpx.get(f"{admin}/roles/{role}", headers=headers, timeout=30)
    realm_role.raise_for_status()
    httpx.post(
        f"{admin}/users/{user_id}/role-mappings/realm",
        headers=headers,
        json=[realm_role.json()],
        timeout=30,
    ).raise_for_status()
    return name
