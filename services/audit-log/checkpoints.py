"""Signed checkpoints (C2SP tlog-checkpoint), their publication, and witness cosignatures.

- The log signs with the platform's Ed25519 key (`HOTLINE_SIGNING_KEY`, or in development
  the key kept in `<data>/audit-log/signing.key`); the key name is the origin
  (`HOTLINE_AUDIT_ORIGIN`), so `/vkey` is `origin+keyid+base64(0x01 || key)`.
- `Publisher` integrates what was sequenced and publishes a checkpoint for each batch, every
  `audit_checkpoint_interval` seconds. Every checkpoint is kept (`audit_checkpoints`,
  `_id` = size, never updated): one size has one checkpoint, so the log cannot sign a fork.
- Witnesses (C2SP tlog-cosignature, `cosignature/v1`) post a cosigned checkpoint; only keys
  listed in `HOTLINE_AUDIT_WITNESSES` are accepted, and `GET /checkpoint` serves the latest
  checkpoint with every cosignature received for it (`audit_cosignatures`, one document per
  checkpoint and witness, the first one kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from hotline.shared.aio import cancel_and_wait
from hotline.shared.config import Settings
from hotline.shared.keys import configured_signing_key
from hotline.shared.store import Store
from hotline.shared.tlog.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from hotline.shared.tlog.errors import InvalidSignatureError, TlogError
from hotline.shared.tlog.hashing import EMPTY_ROOT
from hotline.shared.tlog.note import (
    MAX_SIGNATURES,
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    NoteSignature,
    cosignature_timestamp,
    parse_note,
    parse_verifier_key,
)

from . import storage
from .integrator import IntegrationError, integrate_batch

CHECKPOINTS = storage.CHECKPOINTS
COSIGNATURES = storage.COSIGNATURES
BATCH = 65_536  # entries per integration pass: bounds memory, not latency

log = logging.getLogger("hotline.audit_log.checkpoints")


class WitnessConfigError(ValueError):
    """HOTLINE_AUDIT_WITNESSES holds something that is not a witness verifier key."""


class CosignatureRefused(Exception):
    """A posted cosignature is refused; the subclass says why (the router maps each to an
    HTTP status)."""


class NotANote(CosignatureRefused):
    """The body is not a cosigned checkpoint note."""


class NoSuchCheckpoint(CosignatureRefused):
    """This log published no checkpoint of that size (or origin)."""


class OtherCheckpoint(CosignatureRefused):
    """A checkpoint of that size, but not the one this log published."""


class NotAWitness(CosignatureRefused):
    """A key that is not a witness of this log, or no witness cosignature at all."""


class BadCosignature(CosignatureRefused):
    """A witness's cosignature that does not verify."""


def log_signer(settings: Settings) -> Ed25519Signer:
    """The log's note signer: the platform signing key, named by the log's origin."""
    key = configured_signing_key(settings.signing_key, settings.data / "audit-log" / "signing.key")
    return Ed25519Signer(settings.audit_origin, bytes(key))


def witness_keys(settings: Settings) -> list[CosignatureVerifier]:
    """The witnesses whose cosignatures the log accepts (comma-separated vkeys).

    A plain Ed25519 vkey (type 0x01) names the same key as a cosigner (type 0x04).
    """
    witnesses = []
    for position, text in enumerate(settings.audit_witnesses.split(","), start=1):
        if not text.strip():
            continue
        try:
            verifier = parse_verifier_key(text.strip())
        except TlogError as exc:
            raise WitnessConfigError(f"witness key {position}: {exc}") from None
        if isinstance(verifier, Ed25519Verifier):
            verifier = CosignatureVerifier.from_ed25519(verifier)
        witnesses.append(verifier)
    if len(witnesses) >= MAX_SIGNATURES:
        raise WitnessConfigError(f"at most {MAX_SIGNATURES - 1} witnesses fit on a checkpoint")
    return witnesses


@dataclass(frozen=True)
class StoredCheckpoint:
    """A published checkpoint: its parsed body and the signed note as published."""

    checkpoint: Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def text(self) -> str:
        return self.note[: self.note.index("\n\n") + 1]


def _stored(doc: dict[str, object]) -> StoredCheckpoint:
    note = str(doc["note"])
    return StoredCheckpoint(parse_checkpoint(note[: note.index("\n\n") + 1]), note)


async def latest_checkpoint(store: Store) -> StoredCheckpoint | None:
    doc = await store.db[CHECKPOINTS].find_one({}, sort=[("size", -1)])
    return None if doc is None else _stored(doc)


async def checkpoint_at(store: Store, size: int) -> StoredCheckpoint | None:
    doc = await store.db[CHECKPOINTS].find_one({"_id": size})
    return None if doc is None else _stored(doc)


async def publish_checkpoint(
    store: Store, signer: Ed25519Signer, size: int, root: bytes
) -> StoredCheckpoint:
    """Sign and keep the checkpoint of (size, root); refuse a second, different one."""
    checkpoint = Checkpoint(signer.name, size, root)
    note = sign_checkpoint(checkpoint, [signer])
    try:
        await store.db[CHECKPOINTS].insert_one({"_id": size, "size": size, "note": note})
    except DuplicateKeyError:
        existing = await checkpoint_at(store, size)
        if existing is None or existing.checkpoint != checkpoint:
            raise storage.StoreRewrittenError(
                f"a different checkpoint of size {size} was already published"
            ) from None
        return existing
    return StoredCheckpoint(checkpoint, note)


async def served_note(store: Store, stored: StoredCheckpoint) -> str:
    """The checkpoint as served: the log's note, then the cosignatures received for it."""
    found = store.db[COSIGNATURES].find({"size": stored.size}).sort("_id", 1)
    lines = [doc["line"] async for doc in found]
    return stored.note + "".join(lines)


async def add_cosignatures(
    store: Store, body: str, log_key: Ed25519Verifier, witnesses: Sequence[CosignatureVerifier]
) -> tuple[int, list[str]]:
    """Record witness cosignatures on a published checkpoint; return its size and the names.

    `body` is the checkpoint note cosigned by one or more witnesses (the log's own
    signature may be on it too). Raises a CosignatureRefused: NotANote, NoSuchCheckpoint,
    OtherCheckpoint (not the checkpoint published at that size), NotAWitness (a key that is
    not a witness of this log), BadCosignature (a cosignature that does not verify).
    """
    try:
        text, signatures = parse_note(body)
        checkpoint = parse_checkpoint(text)
    except TlogError as exc:
        raise NotANote(f"not a cosigned checkpoint note: {exc}") from None
    stored = await checkpoint_at(store, checkpoint.size)
    if stored is None or checkpoint.origin != log_key.name:
        raise NoSuchCheckpoint(f"this log published no checkpoint of size {checkpoint.size}")
    if stored.text != text:
        raise OtherCheckpoint(f"not the checkpoint this log published at size {stored.size}")
    cosignatures = _witness_signatures(text, signatures, log_key, witnesses)
    for signature in cosignatures:
        try:
            await store.db[COSIGNATURES].insert_one(
                {
                    "_id": f"{stored.size}:{signature.name}+{signature.key_id:08x}",
                    "size": stored.size,
                    "line": signature.line(),
                    "timestamp": cosignature_timestamp(signature),
                }
            )
        except DuplicateKeyError:
            pass  # this witness already cosigned this checkpoint: the first one is kept
    return stored.size, [signature.name for signature in cosignatures]


def _witness_signatures(
    text: str,
    signatures: Sequence[NoteSignature],
    log_key: Ed25519Verifier,
    witnesses: Sequence[CosignatureVerifier],
) -> list[NoteSignature]:
    """The verified witness cosignatures among `signatures` (the log's own are skipped)."""
    known = {(w.name, w.key_id): w for w in witnesses}
    accepted = []
    for signature in signatures:
        ident = (signature.name, signature.key_id)
        if ident == (log_key.name, log_key.key_id):
            continue
        witness = known.get(ident)
        if witness is None:
            listed = ", ".join(w.vkey() for w in witnesses) or "none configured"
            raise NotAWitness(
                f"{signature.name}+{signature.key_id:08x} is not a witness of this log "
                f"(accepted witness keys: {listed})",
            )
        try:
            witness.verify(text.encode(), signature.signature)
        except InvalidSignatureError as exc:
            raise BadCosignature(f"cosignature refused: {exc}") from None
        accepted.append(signature)
    if not accepted:
        raise NotAWitness("the note carries no cosignature from a witness")
    return accepted


class Publisher:
    """Integrates sequenced entries and publishes their checkpoints, every `interval` s.

    `size` is the size of the newest checkpoint this process knows (read back from the
    store on every pass, so replicas follow each other).
    """

    def __init__(self, store: Store, signer: Ed25519Signer, interval: float) -> None:
        self.store = store
        self.signer = signer
        self.interval = interval
        self.size = 0
        self._task: asyncio.Task[None] | None = None

    async def publish_pending(self) -> int:
        """Integrate everything sequenced so far, one checkpoint per batch; return the size."""
        latest = await latest_checkpoint(self.store)
        size = 0 if latest is None else latest.size
        while True:
            integration = await integrate_batch(
                size,
                lambda start, limit: storage.read_entries(self.store, start, limit),
                lambda paths: storage.read_resources(self.store, paths),
                lambda resources: storage.write_resources(self.store, resources),
                BATCH,
            )
            if integration is None:
                break
            await publish_checkpoint(self.store, self.signer, integration.size, integration.root)
            caught_up = integration.size - size < BATCH
            size = integration.size
            self.size = max(self.size, size)  # the tiles of this checkpoint may be served
            if caught_up:
                break
        if latest is None and size == 0:
            await publish_checkpoint(self.store, self.signer, 0, EMPTY_ROOT)
        self.size = max(self.size, size)
        return self.size

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-publisher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def healthy(self) -> bool:
        """False once the publishing task has died."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except (storage.StoreRewrittenError, IntegrationError) as exc:
                # Never publish over a store that contradicts itself; say so every pass.
                log.error("integration refused", extra={"error_type": type(exc).__name__})
            except Exception as exc:  # noqa: BLE001 - the store may be away: try again
                log.warning("integration pass failed", extra={"error_type": type(exc).__name__})
            await asyncio.sleep(self.interval)  # the publication interval, not a wait
