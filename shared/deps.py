"""What every service's routers share, declared once: the typed FastAPI dependencies and
the one way a service answers its domain errors.

`RuntimeDep` is the process's live clients; each role dependency admits a principal with
that realm role (401 without a valid token, 403 with another role). `answer_errors` maps
domain error classes (which know nothing of HTTP) to statuses, once per service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .auth import Principal, require_role
from .roles import Role
from .service import Runtime, runtime_of

__all__ = [
    "AdminDep",
    "BuyerDep",
    "FactoryManagerDep",
    "OperatorDep",
    "OperatorOrComplianceDep",
    "Role",
    "RuntimeDep",
    "answer_errors",
]


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
OperatorDep = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
BuyerDep = Annotated[Principal, Depends(require_role(Role.BUYER))]
AdminDep = Annotated[Principal, Depends(require_role(Role.PLATFORM_ADMIN))]
FactoryManagerDep = Annotated[Principal, Depends(require_role(Role.FACTORY_MANAGER))]
# Either role admits (statistics: the operators and the compliance officers read them).
OperatorOrComplianceDep = Annotated[
    Principal, Depends(require_role(Role.OPERATOR, Role.COMPLIANCE_OFFICER))
]


def answer_errors(app: FastAPI, statuses: Mapping[type[Exception], int]) -> None:
    """Answer each domain error raised by a route with its class's status (the most specific
    class listed wins) and `{"detail": message}`, as FastAPI answers an HTTPException.
    Domain error messages are written for the caller; nothing is logged here."""

    def responder(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def respond(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return respond

    for error, status in statuses.items():
        app.add_exception_handler(error, responder(status))
    app.add_exception_handler(RequestValidationError, answer_invalid_request)


async def answer_invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """422 for a request that does not validate: where and what, never the value sent.
    FastAPI's own answer repeats the input, which can be request data, and which a NaN or a
    lone surrogate in the body makes unencodable (a 500)."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": problems}, status_code=422)
