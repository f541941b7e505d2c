"""The anonymous report API: recipients of a factory, and submission of a sealed report."""

from __future__ import annotations

import base64

from fastapi import APIRouter, status
from pymongo.errors import DuplicateKeyError

from hotline.shared.config import Settings
from hotline.shared.deps import RuntimeDep
from hotline.shared.envelope import Envelope
from hotline.shared.events import ReportSubmitted, new_event
from hotline.shared.outbox import outbox_of
from hotline.shared.receipt import ReceiptError, normalise_receipt, receipt_lookup_id
from hotline.shared.registry import NoOperatorKey, UnknownFactory, recipients_for
from hotline.shared.reports import RecipientKeys, ReportAccepted, ReportCreate

from .collections import INTAKE_CASES

recipients = APIRouter(prefix="/api/recipients", tags=["recipients"])
reports = APIRouter(prefix="/api/reports", tags=["reports"])


class ReportRejected(Exception):
    """The report does not fit the registry (factory, recipients) or its receipt is malformed."""


class CaseExists(Exception):
    """A case with this id or this receipt was submitted already (nothing was changed)."""


# How this service answers each domain error (registered once, in create_app).
ERROR_STATUS: dict[type[Exception], int] = {
    UnknownFactory: status.HTTP_404_NOT_FOUND,
    NoOperatorKey: status.HTTP_409_CONFLICT,
    ReportRejected: status.HTTP_422_UNPROCESSABLE_CONTENT,
    CaseExists: status.HTTP_409_CONFLICT,
}


@recipients.get("/{factory}", response_model=RecipientKeys)
async def recipients_of(factory: str, runtime: RuntimeDep) -> RecipientKeys:
    """The public keys a report at `factory` must be sealed to (content and identity)."""
    found = await recipients_for(runtime.store, factory)
    return RecipientKeys(
        factory=factory,
        content=_encode_keys(found.content),
        identity=_encode_keys(found.identity),
    )


def _encode_keys(keys: dict[str, bytes]) -> dict[str, str]:
    return {kid: base64.b64encode(pub).decode() for kid, pub in keys.items()}


@reports.post("", status_code=status.HTTP_201_CREATED, response_model=ReportAccepted)
async def submit_report(report: ReportCreate, runtime: RuntimeDep) -> ReportAccepted:
    """Accept a report sealed on the client: the recipients must be exactly the expected keys.
    The envelopes' shape, kind and case were checked with the body (`ReportCreate`)."""
    try:
        expected = await recipients_for(runtime.store, report.factory)
    except UnknownFactory as exc:
        raise ReportRejected(str(exc)) from None  # a field of the body, not a missing resource
    _check_recipients(report.content, set(expected.content))
    if report.identity is not None:
        _check_recipients(report.identity, set(expected.identity))
    try:
        lookup = receipt_lookup_id(normalise_receipt(report.receipt), _pepper(runtime.settings))
    except ReceiptError as exc:
        raise ReportRejected(f"receipt: {exc}") from None

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
    document = {
        "_id": report.case_id,
        **report.routing(),
        "channel": report.channel,
        "server_encrypted": False,
        "receipt_lookup": lookup,
        "content": report.content.model_dump(),
        "identity": report.identity.model_dump() if report.identity else None,
        "status": "received",
    }
    try:
        await outbox_of(runtime.store, INTAKE_CASES.name).insert(document, event)
    except DuplicateKeyError:
        raise CaseExists("a case with this id or receipt already exists") from None
    runtime.relay.poke()
    return ReportAccepted(case_id=report.case_id)


def _check_recipients(envelope: Envelope, expected: set[str]) -> None:
    got = set(envelope.recipients)
    if got != expected:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise ReportRejected(
            f"{envelope.kind} envelope recipients differ from the registry: "
            f"missing {missing}, unexpected {extra}"
        )


def _pepper(settings: Settings) -> bytes:
    return settings.receipt_pepper.encode()
