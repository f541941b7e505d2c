"""The anonymous report API: factory search, recipients (with their proofs from the audit
log), proof-of-work challenges, and submission of a report sealed on the client.

Every refusal is `{"detail": sentence, "code": code}` with a fixed code the page translates;
no answer echoes what was sent (a factory watching the network learns nothing from errors).
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hotline.shared.deps import RuntimeDep
from hotline.shared.pow import new_challenge
from hotline.shared.registry import (
    MAX_FACTORY_MATCHES,
    search_factories,
)
from hotline.shared.reports import RecipientKeys, ReportAccepted, ReportCreate, Transparency

from .state import IntakeDep, Refused
from .submission import accept_report, registered_recipients, report_challenge

api = APIRouter(prefix="/api", tags=["reports"])

CHALLENGE_MINUTES = 10

# The HTTP status of each refusal code (the codes are the page's contract: the worker reads
# a translated sentence for each).
ERROR_STATUS: dict[str, int] = {
    "unknown-factory": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "unknown-category": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "bad-report": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "text-too-long": status.HTTP_413_CONTENT_TOO_LARGE,
    "file-too-large": status.HTTP_413_CONTENT_TOO_LARGE,
    "too-many-files": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "not-an-image": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "bad-envelope": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "wrong-recipients": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "replayed": status.HTTP_409_CONFLICT,
    "stale-challenge": status.HTTP_400_BAD_REQUEST,
    "bad-challenge": status.HTTP_400_BAD_REQUEST,
    "no-operator-key": status.HTTP_409_CONFLICT,
    "log-unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "busy": status.HTTP_503_SERVICE_UNAVAILABLE,
    "case-exists": status.HTTP_409_CONFLICT,
    "wrong-receipt": status.HTTP_404_NOT_FOUND,
    "bad-receipt": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "message-exists": status.HTTP_409_CONFLICT,
    "case-closed": status.HTTP_409_CONFLICT,  # retention deleted its content: no more answers
}


def refusal(code: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "code": code}, status_code=ERROR_STATUS[code])


async def answer_refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return refusal(exc.code, str(exc))


async def answer_invalid(_: Request, exc: Exception) -> JSONResponse:
    """A body that does not validate: say where and what, never the value sent (FastAPI's
    default answer repeats the input)."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = [{"loc": _our_names(error), "msg": error.get("msg", "invalid")} for error in errors]
    code = _code_of(errors)
    return JSONResponse({"detail": problems, "code": code}, status_code=ERROR_STATUS[code])


def _our_names(error: Any) -> list[Any]:
    """Where the error is, in the schema's own names: an unexpected field's name is the
    client's, so it is not repeated."""
    loc = list(error.get("loc", ()))
    return loc[:-1] + ["(unexpected field)"] if error.get("type") == "extra_forbidden" else loc


def _code_of(errors: Any) -> str:
    """The refusal code of a body that does not validate: the first error's field decides."""
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "envelope_shape":
            return "bad-envelope"
        if loc[:2] == ["body", "categories"]:
            return "unknown-category"
        if loc[:2] == ["body", "attachments"] and error.get("type") == "too_long":
            return "too-many-files"
    return "bad-report"


# Codes of the HTTP errors that are not refusals of a report (routing, methods, size).
HTTP_CODES: dict[int, str] = {
    status.HTTP_404_NOT_FOUND: "not-found",
    status.HTTP_413_CONTENT_TOO_LARGE: "file-too-large",
}


async def answer_http(_: Request, exc: Exception) -> JSONResponse:
    """Every other HTTP error, with a code too (the detail is always the server's own)."""
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "bad-report")
    return JSONResponse(
        {"detail": exc.detail, "code": code}, status_code=exc.status_code, headers=exc.headers
    )


class FactoryMatch(BaseModel):
    code: str
    name: str
    city: str
    country: str


@api.get("/factories", response_model=list[FactoryMatch])
async def find_factories(
    runtime: RuntimeDep, q: Annotated[str, Query(min_length=2, max_length=64)]
) -> list[dict[str, str]]:
    """Factories whose code, name or city contains `q` (at most 20)."""
    return (await search_factories(runtime.store, q))[:MAX_FACTORY_MATCHES]


class ChallengeIssued(BaseModel):
    challenge: str
    difficulty: int
    expires_in: int


@api.get("/challenge", response_model=ChallengeIssued)
async def challenge(state: IntakeDep) -> ChallengeIssued:
    """A single-use proof-of-work challenge; its difficulty rises with the submission rate
    and with the rate of failed receipt lookups."""
    difficulty = state.difficulty()
    issued = new_challenge(state.challenge_key, difficulty, time.time(), CHALLENGE_MINUTES)
    return ChallengeIssued(
        challenge=issued, difficulty=difficulty, expires_in=CHALLENGE_MINUTES * 60
    )


@api.get("/recipients/{factory}", response_model=RecipientKeys)
async def recipients_of(factory: str, runtime: RuntimeDep, state: IntakeDep) -> RecipientKeys:
    """The public keys a report at `factory` must be sealed to, and their key proofs."""
    found = await registered_recipients(runtime, factory)
    proofs: dict[str, Any] = await state.key_proofs(sorted({*found.content, *found.identity}))
    return RecipientKeys(
        factory=factory,
        content=_encode_keys(found.content),
        identity=_encode_keys(found.identity),
        transparency=Transparency.model_validate(proofs),
    )


def _encode_keys(keys: dict[str, bytes]) -> dict[str, str]:
    return {kid: base64.b64encode(pub).decode() for kid, pub in keys.items()}


@api.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReportAccepted)
async def submit_report(
    report: ReportCreate, runtime: RuntimeDep, state: IntakeDep
) -> ReportAccepted:
    """Accept a report sealed on the client: the recipients must be exactly the expected keys,
    and the proof of work solved and unspent. The envelopes' shape, kind and case were
    checked with the body (`ReportCreate`)."""
    pow = report.pow
    if pow is None:
        raise Refused("bad-challenge", "a report needs a solved challenge (GET /api/challenge)")
    await accept_report(
        runtime,
        report,
        server_encrypted=False,
        challenge=report_challenge(runtime, state, pow, report),
    )
    state.gauge.accepted()
    return ReportAccepted(case_id=report.case_id)
