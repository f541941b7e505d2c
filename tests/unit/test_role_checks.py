"""`require_role` admits a principal with one of the roles and refuses, fail closed, a token
that also carries factory-manager on every route not made for factory managers."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException

from hotline.shared.auth import Principal, require_role
from hotline.shared.roles import Role


def principal(*roles: str) -> Principal:
    return Principal(subject="someone", roles=frozenset(roles), org="F-001", client=None)


def check(dependency: object, who: Principal) -> int:
    try:
        asyncio.run(dependency(who))  # type: ignore[operator]
    except HTTPException as refused:
        return refused.status_code
    return 200


def test_a_role_is_admitted_and_another_refused() -> None:
    operator_only = require_role(Role.OPERATOR)
    assert check(operator_only, principal(Role.OPERATOR)) == 200
    assert check(operator_only, principal(Role.BUYER)) == 403


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.COMPLIANCE_OFFICER, Role.PLATFORM_ADMIN])
def test_a_token_that_is_also_a_factory_managers_is_refused(role: Role) -> None:
    assert check(require_role(role), principal(role, Role.FACTORY_MANAGER)) == 403


def test_factory_manager_routes_still_admit_factory_managers() -> None:
    assert check(require_role(Role.FACTORY_MANAGER), principal(Role.FACTORY_MANAGER)) == 200
