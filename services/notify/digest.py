"""The digest format (pure: no I/O), shared by notify, which issues digests, and the buyer's
`hotline digests` commands, which check them.

A digest is one buyer's numbered document (seq = 1, 2, 3... with no gap), holding the cases
that are new or changed since the buyer's previous digest, each with its content envelope
sealed to the buyer's key (new cases only). Its body is hashed as RFC 8785 canonical JSON:

    {"version": 1, "buyer", "seq", "previous": <hex SHA-256 of digest seq-1's body> | null,
     "issued": <hour>, "reason": "schedule" | "urgent" | "on-request", "items": [...]}

and signed as a C2SP signed note whose text is `hotline digest v1\\n<buyer>\\n<seq>\\n<hash>\\n`
(the platform's digest key, named `Settings.digest_origin`). A digest file, as a buyer keeps
it, is `{"digest": <body>, "note": <signed note>}`. Never identity, never the worker's reply
key, nothing per worker: an item is routing metadata, the case's state at the hour of
issue, and the content envelope.

Items are listed per case, in the order their records were made: a case whose report
reached the buyer in this digest's range is "new" (with its content), one that only changed
(status, severity, due) is "changed" (content null, no attachments: the buyer holds them).
Severity, status and due are those of the case when the digest is issued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, ValidationError

from hotline.shared.canonical import canonical_json
from hotline.shared.events import AttachmentRef, Severity
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.note import Ed25519Signer, Ed25519Verifier, open_note, sign_note

DIGEST_VERSION = 1
NOTE_HEADER = "hotline digest v1"
# Triage's status of a case it has not moved yet: it publishes no event for it.
RECEIVED = "received"
MAX_ITEMS = 200  # records (new and changed) one digest covers at most; the rest wait for the next

Reason = Literal["schedule", "urgent", "on-request"]
Change = Literal["new", "changed"]
Document = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DigestItem(_Strict):
    case_id: str
    change: Change
    factory: str
    categories: list[str]
    urgent: bool
    language: str
    received: str
    severity: Severity | None
    status: str
    due: str | None
    content: dict[str, Any] | None  # the content envelope as JSON (new items only)
    attachments: list[AttachmentRef]


class DigestBody(_Strict):
    version: Literal[1]
    buyer: str
    seq: int
    previous: str | None
    issued: str
    reason: Reason
    items: list[DigestItem]


class DigestError(ValueError):
    """A digest file that does not check: malformed, unsigned, or signed over another body."""


def digest_items(records: Sequence[Document], cases: Mapping[str, Document]) -> list[Document]:
    """The items of a digest covering `records` (one buyer's, ascending n): one per case, in
    the order of its first record; "new" if the case's report is among them. `cases` holds
    the case state notify keeps (severity, status, due) by case id, where it has one."""
    chosen: dict[str, Document] = {}  # keeps each case at the place of its first record
    for record in records:
        kept = chosen.get(record["case_id"])
        if kept is None or (record["change"] == "new" and kept["change"] != "new"):
            chosen[record["case_id"]] = record
    items = []
    for case_id, record in chosen.items():
        state = cases.get(case_id, {})
        new = record["change"] == "new"
        items.append(
            {
                "case_id": case_id,
                "change": record["change"],
                "factory": record["factory"],
                "categories": list(record["categories"]),
                "urgent": record["urgent"],
                "language": record["language"],
                "received": record["received"],
                "severity": state.get("severity"),
                "status": state.get("status") or RECEIVED,
                "due": state.get("due"),
                "content": record["content"] if new else None,
                "attachments": list(record.get("attachments", [])) if new else [],
            }
        )
    return items


def digest_body(
    buyer: str, seq: int, previous: str | None, issued: str, reason: Reason, items: list[Document]
) -> Document:
    """The body of digest `seq` (requires seq >= 1, and previous None exactly for seq 1)."""
    if seq < 1 or (previous is None) != (seq == 1):
        raise ValueError("digest 1 has no previous digest; every later one has one")
    return {
        "version": DIGEST_VERSION,
        "buyer": buyer,
        "seq": seq,
        "previous": previous,
        "issued": issued,
        "reason": reason,
        "items": items,
    }


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: RFC 8785 canonical JSON of the body."""
    return canonical_json(dict(body))


def digest_hash(body: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical body."""
    return hashlib.sha256(canonical(body)).hexdigest()


def note_text(buyer: str, seq: int, hash_hex: str) -> str:
    """The signed note's text: what the signature says about the digest."""
    return f"{NOTE_HEADER}\n{buyer}\n{seq}\n{hash_hex}\n"


def sign_digest(signer: Ed25519Signer, body: Mapping[str, Any]) -> tuple[str, str]:
    """(digest hash, signed note) of `body`."""
    hashed = digest_hash(body)
    return hashed, sign_note(note_text(str(body["buyer"]), int(body["seq"]), hashed), [signer])


@dataclass(frozen=True)
class CheckedDigest:
    """A digest whose signature covers its body."""

    body: DigestBody
    hash: str

    @property
    def buyer(self) -> str:
        return self.body.buyer

    @property
    def seq(self) -> int:
        return self.body.seq


def read_digest_file(document: Any) -> tuple[Document, str, DigestBody]:
    """The body (as given), note and parsed body of a digest file; DigestError if it is not one."""
    if not isinstance(document, dict) or set(document) != {"digest", "note"}:
        raise DigestError('a digest file is {"digest": {...}, "note": "..."}')
    raw, note = document["digest"], document["note"]
    if not isinstance(raw, dict) or not isinstance(note, str):
        raise DigestError('a digest file is {"digest": {...}, "note": "..."}')
    try:
        body = DigestBody.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DigestError(f"not a digest body: digest.{where}: {first['msg']}") from None
    return raw, note, body


def check_digest_file(document: Any, verifier: Ed25519Verifier) -> CheckedDigest:
    """Check that `document` is a digest file whose note, signed by `verifier`'s key, names
    exactly this body (buyer, seq and the hash of its canonical bytes)."""
    raw, note, body = read_digest_file(document)
    try:
        hashed = digest_hash(raw)
    except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
        raise DigestError(f"the body cannot be canonicalised: {exc}") from None
    try:
        opened = open_note(note, [verifier])
    except TlogError as exc:
        raise DigestError(f"digest {body.seq}: the signature does not verify: {exc}") from None
    if opened.text != note_text(body.buyer, body.seq, hashed):
        raise DigestError(
            f"digest {body.seq}: the signature is over another digest (the body was changed "
            "after it was signed, or the note belongs to another digest)"
        )
    return CheckedDigest(body, hashed)


def chain_problems(digests: Sequence[CheckedDigest]) -> list[str]:
    """What is wrong with `digests` (one buyer's) as a chain: another buyer's digest, a seq
    held twice, a gap (a dropped digest), a `previous` that is not the hash of the digest
    before (a rewrite, or digests put out of order). Empty when they chain."""
    problems: list[str] = []
    if not digests:
        return problems
    buyers = sorted({d.buyer for d in digests})
    if len(buyers) > 1:
        problems.append(f"digests of several buyers are mixed: {', '.join(buyers)}")
    ordered = sorted(digests, key=lambda d: d.seq)
    first = ordered[0]
    if first.seq == 1 and first.body.previous is not None:
        problems.append("digest 1 names a previous digest: there is none")
    before = first
    for after in ordered[1:]:
        if after.seq == before.seq:
            if after.hash != before.hash:
                problems.append(f"two different digests {after.seq} (a fork)")
            continue
        if after.seq != before.seq + 1:
            gap = before.seq + 1, after.seq - 1
            missing = str(gap[0]) if gap[0] == gap[1] else f"{gap[0]} to {gap[1]}"
            problems.append(f"digest {missing} missing (between {before.seq} and {after.seq})")
        elif after.body.previous != before.hash:
            problems.append(
                f"digest {after.seq} does not chain to digest {before.seq} (its previous hash "
                "is not that digest's: rewritten, or out of order)"
            )
        before = after
    return problems
