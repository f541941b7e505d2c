"""The worker's follow-up by receipt, for the status page's script: the case's status and
the messages sent to the worker (POST /api/status), and the worker's answers
(POST /api/answers). The receipt never reaches intake on this path, only the lookup token
derived from it on the device; replies stay sealed to the worker's reply key.

Every answer of POST /api/status, found or not, refused or busy, has the same length
(conversation.padded_json), so its size tells an onlooker nothing about the case. Each
lookup pays a proof of work (harder while lookups fail: the failed-lookup gauge) and counts
against a global rate; nothing about the client is kept.

An answer to a case whose content retention deleted is refused, 409 "case-closed", storing
nothing; the case's status is still shown.
"""

from __future__ import annotations

import base64
import json

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hotline.shared.deps import RuntimeDep
from hotline.shared.messages import AnswerCreate, StatusQuery

from .conversation import accept_answer, case_status, find_case, padded_json
from .reports import ERROR_STATUS
from .state import IntakeDep, Refused
from .submission import registered_recipients, spend_challenge

followup = APIRouter(prefix="/api", tags=["follow-up"])


@followup.post("/status", response_class=Response)
async def status_of(request: Request, runtime: RuntimeDep, state: IntakeDep) -> Response:
    """The case of a lookup token: status, days, the messages to the worker (sealed to the
    reply key), the days of the worker's answers, and the operator keys (with their proofs
    from the audit log) an answer is sealed to. Always padded to the same length."""
    try:
        query = StatusQuery.model_validate_json(await request.body())
        await spend_challenge(runtime, state, query.pow)
        state.admit_lookup()
        case = await find_case(runtime, state, query.lookup_token)
        shown = await case_status(runtime, case)
        operators = (await registered_recipients(runtime, case["factory"])).identity
        keys = {kid: base64.b64encode(pub).decode() for kid, pub in operators.items()}
        proofs = await state.key_proofs(sorted(operators))
    except Refused as refused:
        payload = {"found": False, "code": refused.code, "detail": str(refused)}
        return padded_json(payload, ERROR_STATUS[refused.code])
    except (ValidationError, json.JSONDecodeError):
        payload = {"found": False, "code": "bad-report", "detail": "not a status query"}
        return padded_json(payload, status.HTTP_422_UNPROCESSABLE_CONTENT)
    shown["operators"] = {"content": keys, "identity": keys, "transparency": proofs}
    return padded_json({"found": True, **shown}, status.HTTP_200_OK)


@followup.post("/answers", status_code=status.HTTP_201_CREATED)
async def answer(body: AnswerCreate, runtime: RuntimeDep, state: IntakeDep) -> dict[str, str]:
    """The worker's answer, sealed on the device to the operator keys; found by the lookup
    token. Refusals are the report API's codes, plus wrong-receipt, message-exists and
    case-closed (409: the case's content is deleted, it takes no more answers)."""
    try:
        message = body.message()  # the envelopes' kinds, as MessageCreate checks them
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    await spend_challenge(runtime, state, body.pow)  # before the lookup: guessing pays
    state.admit_lookup()
    case = await find_case(runtime, state, body.lookup_token)
    await accept_answer(runtime, message, case)
    return {"message_id": body.message_id}
