"""Users of the session's realm made for one test module, beside the demo users.

The demo users (admin, buyer1 of org buyer-1, ...) belong to the README walkthrough, which
registers buyer-1 and F-001 in the session's system; a module that needs buyers of its own
creates them here, with an `org` nobody else uses, so the two never collide.
"""

from __future__ import annotations

import uuid

from hotline.cli.engines import keycloak
from hotline.shared.config import Settings


def admin_headers(settings: Settings) -> dict[str, str]:
    """A master-realm admin token (the local bootstrap admin)."""
    return keycloak.local_admin_headers(settings)


def add_user(settings: Settings, role: str, org: str | None = None) -> str:
    """Create a user with realm role `role` (and claim `org`); return its name, which is also
    its password, as for the demo users."""
    return keycloak.add_local_user(settings, f"t-{role}-{uuid.uuid4().hex[:8]}", role, org)
