"""What every service's routers share, declared once: the typed FastAPI dependencies and
the one way a service answers its domain errors.

`RuntimeDep` is the process's live clients; each role dependency admits a principal with
that realm role (401 without a valid token, 403 with another role). `answer_errors` maps
domain error classes (which know nothing of HTTP) to statuses, once per service, and
`document_errors` makes each service's OpenAPI document say how its routes answer errors.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure

from .auth import Principal, require_role
from .roles import Role
from .service import Runtime, runtime_of

__all__ = [
    "ERROR_RESPONSES",
    "AdminDep",
    "BuyerDep",
    "ErrorAnswer",
    "FactoryManagerDep",
    "OperatorDep",
    "OperatorOrComplianceDep",
    "Role",
    "RuntimeDep",
    "answer_errors",
    "document_errors",
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
            # An error that knows when to ask again (a 503) says so in Retry-After.
            retry_after = getattr(exc, "retry_after", None)
            headers = None if retry_after is None else {"Retry-After": str(retry_after)}
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

        return respond

    for error, status in statuses.items():
        app.add_exception_handler(error, responder(status))
    app.add_exception_handler(ConnectionFailure, answer_store_unreachable)
    app.add_exception_handler(RequestValidationError, answer_invalid_request)
    document_errors(app)


STORE_RETRY_AFTER = 5  # seconds: the supervisor starts a dead store again within a few


async def answer_store_unreachable(_: Request, exc: Exception) -> JSONResponse:
    """503 while the store is away (restarting, or its connection broke mid-request), not a
    500: asking again shortly is the remedy. As with a dropped connection, a write in flight
    may have landed; every write is keyed (a report by its case id), so asking again with
    the same request stores it once (a report then meets `case-exists`)."""
    return JSONResponse(
        {"detail": "the database is unreachable: try again shortly"},
        status_code=503,
        headers={"Retry-After": str(STORE_RETRY_AFTER)},
    )


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


class ValidationProblem(BaseModel):
    """One reason a request does not validate: where (in the schema's own names) and what."""

    loc: list[str | int]
    msg: str


class ErrorAnswer(BaseModel):
    """Every error answer of every service. `detail` is a sentence written for the caller or,
    for a request that does not validate, the list of its problems. Intake adds `code`, a
    fixed word its pages translate (its status lookup also `found` and `padding`)."""

    detail: str | list[ValidationProblem]
    code: str | None = None


# The error statuses the services' routes answer, documented on every operation (401 on
# those that take a token only). No route answers 429: an intake that is too busy says 503.
ERROR_RESPONSES: dict[int, str] = {
    400: "Malformed: a cursor or challenge this service did not hand out, a note not in UTF-8",
    401: "No valid bearer token",
    403: "The token's role or organisation does not admit this, or the signer is no witness",
    404: "No such thing, or none the caller may see",
    409: "Conflicts with what is stored: it exists already, or changed meanwhile",
    410: "The case's content was deleted under the retention policy",
    413: "The body is over the service's limit",
    422: "Does not validate: `detail` lists the problems, or says what is wrong",
    503: "Something this needs (the audit log, the token keys, Kafka) is unavailable: try again",
}
TOKEN_ONLY = frozenset({401})
_ERROR_SCHEMAS = ErrorAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# What FastAPI documents on its own, replaced by ErrorAnswer: its 422 is not the shape sent.
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document_errors(app: FastAPI) -> None:
    """Generate `app`'s OpenAPI document with ERROR_RESPONSES on every operation, each an
    ErrorAnswer (a route's own documentation of a status, other than FastAPI's 422, stays)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_error_answers(generate())  # generate() keeps the document in openapi_schema
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def _add_error_answers(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error_answer = {key: value for key, value in _ERROR_SCHEMAS.items() if key != "$defs"}
    schemas.update(_ERROR_SCHEMAS.get("$defs", {}), ErrorAnswer=error_answer)
    answer = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            takes_token = bool(operation.get("security"))
            for status, description in ERROR_RESPONSES.items():
                if status in TOKEN_ONLY and not takes_token:
                    continue
                documented = responses.get(str(status))
                if documented is None or _is_fastapi_validation_error(documented):
                    responses[str(status)] = {"description": description, "content": answer}
    for name in _FASTAPI_ERROR_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == "#/components/schemas/HTTPValidationError")
