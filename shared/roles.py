"""The realm roles (deploy/keycloak/hotline-realm.json), one per kind of person, declared
once; pure, so that the auditor's policy uses the same names as the services' checks."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "triage-analyst"
    BUYER = "buyer"
    COMPLIANCE_OFFICER = "compliance-officer"
    FACTORY_MANAGER = "factory-manager"
    PLATFORM_ADMIN = "platform-admin"
