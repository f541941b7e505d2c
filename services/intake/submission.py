"""Accepting a report: one path for reports sealed on the device (the API) and for the no-JS
form, which intake seals here, in memory.

A report is stored whole or not at all: its attachments first, each its own document of
`intake_attachments` (ciphertext never goes to Kafka; the event carries their hashes, sizes
and recipients), then the case document with its event in the outbox, in one write. If the
case write fails the attachments just written are deleted again, so a refused report leaves
nothing behind.

The no-JS path (`submit_plain`) holds the worker's words only in this process's memory for
the length of the request: it re-encodes photos with Pillow (no EXIF, GPS or maker notes
survive), draws and derives the receipt (Argon2id), seals with the same envelope code as the
CLI, and forgets. Nothing of the plaintext is logged (shared/logpolicy.py), and the case is
marked `server_encrypted`.
"""

from __future__ import annotations

import asyncio
import io
import unicodedata
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PIL import Image, ImageOps, UnidentifiedImageError
from pymongo.errors import DuplicateKeyError

from hotline.shared.envelope import (
    MAX_ATTACHMENT_BYTES,
    Envelope,
    EnvelopeError,
    envelope_hash,
    seal_envelope,
)
from hotline.shared.events import AttachmentRef, ReportSubmitted, new_event
from hotline.shared.keys import b64encode
from hotline.shared.outbox import outbox_of
from hotline.shared.pow import Challenge, ChallengeError, StaleChallenge, check_solution
from hotline.shared.receipt import derive_receipt, lookup_hash, new_receipt
from hotline.shared.registry import NoOperatorKey, Recipients, UnknownFactory
from hotline.shared.reports import MAX_ATTACHMENTS, ProofOfWork, ReportCreate, routing_metadata
from hotline.shared.service import Runtime
from hotline.shared.taxonomy import category_codes

from .collections import INTAKE_ATTACHMENTS, INTAKE_CASES, SPENT_CHALLENGES
from .state import IntakeState, Refused

MAX_PHOTOS = 3
MAX_TEXT_BYTES = 32 * 1024  # what happened; a content envelope holds up to 64 KiB
MAX_CONTACT_BYTES = 2 * 1024
MAX_PHOTO_SIDE = 1600  # pixels: enough to read a notice or a payslip
MAX_UPLOAD_PIXELS = 50_000_000  # larger images are refused before decoding (decompression bombs)


async def registered_recipients(runtime: Runtime, factory: str) -> Recipients:
    """The keys a report at `factory` is sealed to, as the registry says; raises Refused."""
    try:
        return await runtime.registry.recipients_for(factory)
    except UnknownFactory:
        raise Refused("unknown-factory", "no factory has this code") from None
    except NoOperatorKey:
        raise Refused("no-operator-key", "the hotline cannot receive reports yet") from None


# Each challenge is spent once, on whatever it pays for. A report records its challenge's
# nonce in its own case document (`challenge`, a unique index), so that spending it costs
# no write of its own: the case's insert is the spend. Lookups and answers record theirs in
# SPENT_CHALLENGES (until it expires), and so does a report refused as `case-exists`, so
# that asking whether a case id or receipt exists still costs a proof of work each time.
# Each path reads the other's record first; a report and a lookup racing with one solution
# could both pass that read, so one proof of work buys at most one report and one lookup,
# never two of either.
REPLAYED = "this challenge was used already; fetch a new one"


def solved_challenge(state: IntakeState, pow: ProofOfWork) -> Challenge:
    """The challenge of `pow`, if it is ours, unexpired and solved; raises Refused."""
    now = datetime.now(UTC)
    try:
        return check_solution(state.challenge_key, pow.challenge, pow.solution, now.timestamp())
    except StaleChallenge:
        raise Refused("stale-challenge", "the challenge expired; fetch a new one") from None
    except ChallengeError:
        raise Refused("bad-challenge", "the challenge is not solved or not ours") from None


async def _spent_by_a_report(runtime: Runtime, nonce: str, other_than: str | None = None) -> bool:
    """Whether a case (but `other_than`: a report sent again) was submitted with `nonce`."""
    spent: dict[str, object] = {"challenge": nonce}
    if other_than is not None:
        spent["_id"] = {"$ne": other_than}
    return await runtime.store.db[INTAKE_CASES.name].find_one(spent, {"_id": 1}) is not None


async def _spent_by_a_lookup(runtime: Runtime, nonce: str) -> bool:
    """Whether a lookup or an answer (or a report refused as `case-exists`) spent `nonce`."""
    return await runtime.store.batched_exists(SPENT_CHALLENGES.name)(nonce)


async def _record_spent(runtime: Runtime, challenge: Challenge) -> None:
    """Record the challenge spent until it expires (TTL index); raises Refused if it was.
    The record names the challenge, never its solver."""
    expires = datetime.fromtimestamp(challenge.expires_at, UTC)
    try:
        await runtime.store.db[SPENT_CHALLENGES.name].insert_one(
            {"_id": challenge.nonce, "expires": expires}
        )
    except DuplicateKeyError:
        raise Refused("replayed", REPLAYED) from None


async def spend_challenge(runtime: Runtime, state: IntakeState, pow: ProofOfWork) -> None:
    """Check the proof of work of a lookup or an answer and spend it; raises Refused."""
    challenge = solved_challenge(state, pow)
    if await _spent_by_a_report(runtime, challenge.nonce):
        raise Refused("replayed", REPLAYED)
    await _record_spent(runtime, challenge)


def report_challenge(
    runtime: Runtime, state: IntakeState, pow: ProofOfWork, report: ReportCreate
) -> Callable[[], Awaitable[Challenge]]:
    """What `accept_report` runs to check a report's proof of work: the solved challenge, if
    no lookup or answer has spent it (nor, for a report with attachments, another report:
    else the unique index refuses it, but only after megabytes were written and deleted)."""

    async def unspent() -> Challenge:
        challenge = solved_challenge(state, pow)
        if await _spent_by_a_lookup(runtime, challenge.nonce):
            raise Refused("replayed", REPLAYED)
        if report.attachments and await _spent_by_a_report(
            runtime, challenge.nonce, other_than=report.case_id
        ):
            raise Refused("replayed", REPLAYED)
        return challenge

    return unspent


async def accept_report(
    runtime: Runtime,
    report: ReportCreate,
    *,
    server_encrypted: bool,
    challenge: Callable[[], Awaitable[Challenge]] | None = None,
) -> None:
    """Store a sealed report and announce it, or raise Refused and store nothing.
    `challenge` (`report_challenge`) only reads, so it runs beside the registry's read, one
    round trip for both; a report refused for its factory or keys is refused for that first.
    The case's insert spends the challenge it returns, so a refused report burns none."""
    expected, paid = await asyncio.gather(
        registered_recipients(runtime, report.factory),
        challenge() if challenge is not None else _no_challenge(),
        return_exceptions=True,
    )
    if isinstance(expected, BaseException):
        raise expected
    _check_recipients(report.content, set(expected.content))
    if report.identity is not None:
        _check_recipients(report.identity, set(expected.identity))
    for attachment in report.attachments:
        _check_recipients(attachment, set(expected.content))
    if isinstance(paid, BaseException):
        raise paid

    refs = [attachment_ref(attachment) for attachment in report.attachments]
    event = new_event(
        report.case_id,
        ReportSubmitted(
            factory=report.factory,
            categories=report.categories,
            urgent=report.urgent,
            language=report.language,
            channel=report.channel,
            server_encrypted=server_encrypted,
            content=report.content,
            identity=report.identity,
            attachments=refs,
            reply_key=report.reply_key,
        ),
    )
    document = {
        "_id": report.case_id,
        **report.routing(),
        "channel": report.channel,
        "server_encrypted": server_encrypted,
        "receipt_lookup": lookup_hash(bytes.fromhex(report.lookup_token)),
        "reply_key": report.reply_key,
        "content": report.content.model_dump(),
        "identity": report.identity.model_dump() if report.identity else None,
        "attachments": [ref.model_dump() for ref in refs],
        # What the status page shows: days only (the event's hour, cut to the day).
        "status": "received",
        "received": event.time[:10],
        "updated": event.time[:10],
        "acknowledged": None,
        "feedback": None,
    }
    if paid is not None:  # the spend (unique): it names the challenge, never its solver
        document["challenge"] = paid.nonce
    stored = await store_attachments(runtime, report.case_id, report.attachments, refs)
    try:
        await outbox_of(runtime.store, INTAKE_CASES.name).insert(document, event)
    except DuplicateKeyError:
        await delete_attachments(runtime, stored)
        if paid is not None:
            if await _spent_by_a_report(runtime, paid.nonce, other_than=report.case_id):
                raise Refused("replayed", REPLAYED) from None
            await _record_spent(runtime, paid)  # asking what exists costs the work too
        raise Refused("case-exists", "a case with this id or receipt already exists") from None
    except BaseException:
        await delete_attachments(runtime, stored)
        raise
    runtime.relay.poke()


async def _no_challenge() -> None:
    return None


def attachment_ref(attachment: Envelope) -> AttachmentRef:
    """How events and the audit log refer to an attachment envelope kept in intake."""
    return AttachmentRef(
        hash=envelope_hash(attachment),
        size=len(attachment.ciphertext) * 3 // 4 - attachment.ciphertext.count("="),
        recipients=sorted(attachment.recipients),
    )


async def store_attachments(
    runtime: Runtime,
    case_id: str,
    attachments: list[Envelope],
    refs: list[AttachmentRef],
    *,
    message_id: str | None = None,
) -> list[str]:
    """Store each attachment envelope as its own document (of a report, or of the answer
    `message_id`); return their ids. On failure those written are deleted again."""
    collection = runtime.store.db[INTAKE_ATTACHMENTS.name]
    stored: list[str] = []
    try:
        for attachment, ref in zip(attachments, refs, strict=True):
            document = {"_id": ref.hash, "case_id": case_id, "envelope": attachment.model_dump()}
            if message_id is not None:
                document["message_id"] = message_id
            await collection.insert_one(document)
            stored.append(ref.hash)
    except DuplicateKeyError:
        await delete_attachments(runtime, stored)
        raise Refused("replayed", "an attachment was submitted before") from None
    except BaseException:
        await delete_attachments(runtime, stored)
        raise
    return stored


async def delete_attachments(runtime: Runtime, hashes: list[str]) -> None:
    if hashes:
        await runtime.store.db[INTAKE_ATTACHMENTS.name].delete_many({"_id": {"$in": hashes}})


def _check_recipients(envelope: Envelope, expected: set[str]) -> None:
    if set(envelope.recipients) != expected:
        raise Refused(
            "wrong-recipients",
            f"the {envelope.kind} envelope is not sealed to exactly the registered keys",
        )


@dataclass
class PlainReport:
    """The no-JS form as posted: the worker's words and files, in memory only."""

    factory: str
    categories: list[str]
    urgent: bool
    language: str
    text: str
    contact: str = ""
    photos: list[bytes] = field(default_factory=list, repr=False)
    voice: bytes | None = field(default=None, repr=False)
    voice_type: str | None = None


async def submit_plain(runtime: Runtime, state: IntakeState, plain: PlainReport) -> str:
    """Seal a no-JS report here, store it as `accept_report` does, and return the receipt
    (formatted); raises Refused. One at a time (the no-JS queue); the wait is the throttle
    this path has instead of a proof of work."""
    _check_plain(plain)
    async with state.nojs_turn():
        return await _seal_and_accept(runtime, plain)


# What a page shows as nothing: control and format characters, lone surrogates, spaces and
# other separators. Unassigned code points count as something: this Python's Unicode may
# predate an emoji the worker's phone knows (page-common.js's saysSomething agrees).
SHOWN_AS_NOTHING = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def says_something(text: str) -> bool:
    """Whether a worker's text holds a character a reader sees."""
    return any(unicodedata.category(character) not in SHOWN_AS_NOTHING for character in text)


def _check_plain(plain: PlainReport) -> None:
    if not plain.categories or set(plain.categories) - category_codes():
        raise Refused("unknown-category", "choose at least one category from the list")
    if not says_something(plain.text):
        raise Refused("bad-report", "say what happened")
    if len(plain.text.encode()) > MAX_TEXT_BYTES or len(plain.contact.encode()) > MAX_CONTACT_BYTES:
        raise Refused("text-too-long", "the text is too long")
    if (
        len(plain.photos) > MAX_PHOTOS
        or len(plain.photos) + (plain.voice is not None) > MAX_ATTACHMENTS
    ):
        raise Refused("too-many-files", f"at most {MAX_PHOTOS} photos and one voice note")
    if plain.voice is not None and not (plain.voice_type or "").startswith("audio/"):
        raise Refused("bad-report", "a voice note must be a sound recording")


async def _seal_and_accept(runtime: Runtime, plain: PlainReport) -> str:
    expected = await registered_recipients(runtime, plain.factory)
    photos = [await asyncio.to_thread(strip_photo, photo) for photo in plain.photos]
    files = [b"image/jpeg\n" + photo for photo in photos]
    if plain.voice is not None:
        files.append(
            (plain.voice_type or "audio/webm").encode("ascii", "replace") + b"\n" + plain.voice
        )
    if any(len(data) > MAX_ATTACHMENT_BYTES for data in files):
        raise Refused("file-too-large", "a file is too large (at most 4 MB each)")

    case_id = str(uuid.uuid4())
    routing = routing_metadata(plain.factory, plain.categories, plain.urgent, plain.language)
    receipt = new_receipt()
    derived = await asyncio.to_thread(derive_receipt, receipt)
    try:
        content = seal_envelope(
            plain.text.encode(),
            case_id=case_id,
            kind="content",
            routing=routing,
            recipients=expected.content,
        )
        identity = (
            seal_envelope(
                plain.contact.encode(),
                case_id=case_id,
                kind="identity",
                routing=routing,
                recipients=expected.identity,
            )
            if plain.contact.strip()
            else None
        )
        attachments = [
            seal_envelope(
                data,
                case_id=case_id,
                kind="attachment",
                routing=routing,
                recipients=expected.content,
            )
            for data in files
        ]
        report = ReportCreate(
            case_id=case_id,
            factory=plain.factory,
            categories=plain.categories,
            urgent=plain.urgent,
            language=plain.language,
            channel="web",
            lookup_token=derived.lookup_token.hex(),
            reply_key=b64encode(derived.reply_public),
            content=content,
            identity=identity,
            attachments=attachments,
        )
    except (EnvelopeError, ValueError):
        raise Refused("bad-report", "the report could not be sealed") from None
    await accept_report(runtime, report, server_encrypted=True)
    return receipt


def strip_photo(data: bytes) -> bytes:
    """The photo re-encoded as a JPEG from its pixels alone: turned upright as its EXIF
    orientation says, at most MAX_PHOTO_SIDE on its longest side, and without any metadata
    (EXIF, GPS, maker notes, XMP, ICC). Raises Refused for anything that is not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_UPLOAD_PIXELS:
                    raise Refused("file-too-large", "the photo has too many pixels")
                upright = ImageOps.exif_transpose(image)
                pixels = upright.convert("RGB")
        pixels.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))
        clean = Image.new("RGB", pixels.size)
        clean.paste(pixels)  # a new image carries no info dictionary from the upload
        out = io.BytesIO()
        clean.save(out, format="JPEG", quality=85)
    except Refused:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        raise Refused("not-an-image", "a photo could not be read as an image") from None
    return out.getvalue()
