"""A report sealed on this machine as `hotline submit` seals it: the content (and, if given,
the identity) sealed to the factory's recipients as intake lists them, a fresh receipt (only
its derived lookup token and reply key leave), the proof of work solved. Also what the
benchmarks and the tests submit, so every report sent from Python is made one way."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import click
from pydantic import ValidationError

from hotline.shared.envelope import seal_envelope
from hotline.shared.keys import CryptoError, b64decode_strict, b64encode
from hotline.shared.pow import solve
from hotline.shared.receipt import derive_receipt, new_receipt
from hotline.shared.reports import ProofOfWork, ReportCreate, routing_metadata

from .session import call


@dataclass(frozen=True)
class SealedReport:
    report: ReportCreate  # the body of POST /api/reports
    receipt: str  # the worker's receipt: shown once, never sent


def seal_report(
    intake_url: str,
    factory: str,
    categories: list[str],
    text: str,
    *,
    urgent: bool = False,
    identity: str | None = None,
    language: str = "en",
) -> SealedReport:
    """Seal a report to `factory`'s recipients at `intake_url`; a clear CLI error if intake
    cannot be asked or would refuse the report (the very model intake validates)."""
    keys_for = call("GET", f"{intake_url}/api/recipients/{factory}")
    content_keys = {kid: b64decode_strict(pub) for kid, pub in keys_for["content"].items()}
    identity_keys = {kid: b64decode_strict(pub) for kid, pub in keys_for["identity"].items()}
    case_id = str(uuid.uuid4())
    routing = routing_metadata(factory, categories, urgent, language)
    try:
        content = seal_envelope(
            text.encode(), case_id=case_id, kind="content", routing=routing, recipients=content_keys
        )
        sealed_identity = (
            seal_envelope(
                identity.encode(),
                case_id=case_id,
                kind="identity",
                routing=routing,
                recipients=identity_keys,
            )
            if identity
            else None
        )
    except CryptoError as exc:
        raise click.ClickException(f"cannot seal the report: {exc}") from None
    receipt = new_receipt()
    derived = derive_receipt(receipt)  # the receipt itself never leaves this machine
    issued = call("GET", f"{intake_url}/api/challenge")
    try:
        report = ReportCreate(
            case_id=case_id,
            factory=factory,
            categories=categories,
            urgent=urgent,
            language=language,
            channel="phone",
            lookup_token=derived.lookup_token.hex(),
            reply_key=b64encode(derived.reply_public),
            content=content,
            identity=sealed_identity,
            pow=ProofOfWork(
                challenge=issued["challenge"],
                solution=solve(issued["challenge"], issued["difficulty"]),
            ),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(f"invalid report: {problems}") from None
    return SealedReport(report, receipt)
