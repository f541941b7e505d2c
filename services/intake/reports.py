"""The anonymous report API: recipients of a factory, and submission of a sealed report."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pymongo.errors import DuplicateKeyError

from hotline.shared.config import Settings
from hotline.shared.deps import RuntimeDep
from hotline.shared.envelope import EnvelopeError, envelope_recipients, validate_envelope_shape
from hotline.shared.events import ReportSubmitted, new_event
from hotline.shared.receipt import ReceiptError, normalise_receipt, receipt_lookup_id
from hotline.shared.registry import RegistryError, recipients_for
from hotline.shared.reports import ReportAccepted, ReportCreate
from hotline.shared.store import with_outbox

router = APIRouter(prefix="/api", tags=["reports"])


@router.get("/recipients/{factory}")
async def recipients(factory: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The public keys a report at `factory` must be sealed to (content and identity)."""
    try:
        found = await recipients_for(runtime.store, factory)
    except RegistryError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return {
        "factory": factory,
        "content": _encode_keys(found.content),
        "identity": _encode_keys(found.identity),
    }


def _encode_keys(keys: dict[str, bytes]) -> dict[str, str]:
    return {kid: base64.b64encode(pub).decode() for kid, pub in keys.items()}


@router.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReportAccepted)
async def submit_report(report: ReportCreate, runtime: RuntimeDep) -> ReportAccepted:
    """Accept a report sealed on the client: the recipients must be exactly the expected keys."""
    try:
        expected = await recipients_for(runtime.store, report.factory)
    except RegistryError as exc:
        raise HTTPException(exc.status if exc.status != 404 else 422, str(exc)) from None
    _check_envelope(report.content, "content", report.case_id, set(expected.content))
    if report.identity is not None:
        _check_envelope(report.identity, "identity", report.case_id, set(expected.identity))
    try:
        lookup = receipt_lookup_id(normalise_receipt(report.receipt), _pepper(runtime.settings))
    except ReceiptError as exc:
        raise HTTPException(422, f"receipt: {exc}") from None

    event = new_event(
        report.case_id,
        ReportSubmitted(
            factory=report.factory,
            categories=report.categories,
            urgent=report.urgent,
            language=report.language,
            channel=report.channel,
            server_encrypted=False,
            content=report.content,
            identity=report.identity,
        ),
    )
    document = with_outbox(
        {
            "_id": report.case_id,
            **report.routing(),
            "channel": report.channel,
            "server_encrypted": False,
            "receipt_lookup": lookup,
            "content": report.content,
            "identity": report.identity,
            "status": "received",
        },
        event,
    )
    try:
        await runtime.store.db.intake_cases.insert_one(document)
    except DuplicateKeyError:
        raise HTTPException(409, "a case with this id or receipt already exists") from None
    runtime.relay.poke()
    return ReportAccepted(case_id=report.case_id)


def _check_envelope(envelope: dict[str, Any], kind: str, case_id: str, expected: set[str]) -> None:
    try:
        validate_envelope_shape(envelope)
    except EnvelopeError as exc:
        raise HTTPException(422, f"{kind} envelope: {exc}") from None
    if envelope.get("kind") != kind or envelope.get("case_id") != case_id:
        raise HTTPException(422, f"{kind} envelope is not the {kind} of case {case_id}")
    got = envelope_recipients(envelope)
    if got != expected:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise HTTPException(
            422,
            f"{kind} envelope recipients differ from the registry: "
            f"missing {missing}, unexpected {extra}",
        )


def _pepper(settings: Settings) -> bytes:
    return settings.receipt_pepper.encode()
