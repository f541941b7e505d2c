"""The typed FastAPI dependencies every service's routers use, declared once.

`RuntimeDep` is the process's live clients; each role dependency admits a principal with
that realm role (401 without a valid token, 403 with another role).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Depends

from .auth import Principal, require_role
from .service import Runtime, runtime_of


class Role(StrEnum):
    """The realm roles (deploy/keycloak/hotline-realm.json), one per kind of person."""

    OPERATOR = "triage-analyst"
    BUYER = "buyer"
    COMPLIANCE_OFFICER = "compliance-officer"
    FACTORY_MANAGER = "factory-manager"
    PLATFORM_ADMIN = "platform-admin"


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
OperatorDep = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
BuyerDep = Annotated[Principal, Depends(require_role(Role.BUYER))]
AdminDep = Annotated[Principal, Depends(require_role(Role.PLATFORM_ADMIN))]
