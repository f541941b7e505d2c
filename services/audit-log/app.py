"""Audit log: every event on every topic becomes a leaf of an RFC 9162 Merkle tree.

Public and read-only (no token, no cookie; what it holds is hashes and metadata only):

    GET  /checkpoint                 text/plain; charset=utf-8, Cache-Control: public, max-age=2
                                     the latest signed checkpoint (C2SP tlog-checkpoint) with
                                     the witness cosignatures received for it
    GET  /tile/<L>/<N>[.p/<W>]       application/octet-stream (C2SP tlog-tiles)
    GET  /tile/entries/<N>[.p/<W>]   application/octet-stream, entry bundles
                                     both: Cache-Control: public, max-age=31536000, immutable
                                     (a path's contents never change); 404 beyond the tree
    GET  /vkey                       text/plain, the log's verifier key (C2SP signed-note)
    POST /cosignature                text/plain body: the checkpoint note cosigned by a
                                     witness (C2SP tlog-cosignature); JSON answer
    GET  /api/entries?case=&start=&limit=   JSON entries, for people reading the log
    GET  /api/key-proofs?key=<kid>&key=...  JSON: the latest checkpoint and, for each key
                                     registered in its tree, the registration entry and its
                                     inclusion proof (what the worker's page checks)
    GET  /healthz

The service runs its own lifespan rather than `service_lifespan`: it has no outbox, no
authenticated route (so no token verifier), consumes in batches, and must check its store
before serving anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from hotline.shared.aio import cancel_and_wait
from hotline.shared.bus import ConsumerRunner, KafkaHealth, make_producer
from hotline.shared.config import Settings
from hotline.shared.deps import answer_errors
from hotline.shared.events import DATA_MODELS, topic_for
from hotline.shared.keys import KeyFormatError, b64encode, check_key_id
from hotline.shared.service import health_answer
from hotline.shared.store import Store
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.note import CosignatureVerifier, Ed25519Signer
from hotline.shared.tlog.tiles import in_tree, parse_path
from hotline.shared.web import MAX_API_BODY, BodyLimit

from . import storage
from .checkpoints import (
    BadCosignature,
    CosignatureRefused,
    NoSuchCheckpoint,
    NotANote,
    NotAWitness,
    OtherCheckpoint,
    Publisher,
    WitnessConfigError,
    add_cosignatures,
    latest_checkpoint,
    log_signer,
    served_note,
    witness_keys,
)
from .consumer import sequencing_consumer
from .integrity import check_store
from .key_proofs import key_proofs
from .sequencer import Sequencer

AUDITED_TOPICS = sorted({topic_for(event_type) for event_type, _ in DATA_MODELS})
IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_CACHE = "public, max-age=2"  # C2SP: no caching beyond a few seconds
VKEY_CACHE = "public, max-age=300"
OCTET_STREAM = "application/octet-stream"
MAX_COSIGNED_NOTE = 16 * 1024
MAX_PROVEN_KEYS = 64  # one factory's recipients, with room to spare
COSIGNATURE_REFUSED_STATUS: dict[type[CosignatureRefused], int] = {
    NotANote: 400,
    NoSuchCheckpoint: 404,
    OtherCheckpoint: 409,
    NotAWitness: 403,
    BadCosignature: 422,
}

log = logging.getLogger("hotline.audit_log")


@dataclass
class AuditLog:
    """What the routes use (kept in `app.state.audit`)."""

    store: Store
    signer: Ed25519Signer
    witnesses: list[CosignatureVerifier]
    publisher: Publisher
    consumer: ConsumerRunner | None = None
    kafka: KafkaHealth | None = None  # None when it does not consume

    def tasks(self) -> dict[str, Publisher | ConsumerRunner]:
        """The background work whose death makes the service unhealthy."""
        tasks: dict[str, Publisher | ConsumerRunner] = {"publisher": self.publisher}
        if self.consumer is not None:
            tasks["consumer"] = self.consumer
        return tasks


async def audit_of(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


AuditDep = Annotated[AuditLog, Depends(audit_of)]
tlog = APIRouter(tags=["tlog"])
api = APIRouter(prefix="/api", tags=["log"])
MAX_INDEX = 2**63 - 1  # the store keeps indexes as 64-bit integers: a larger start is a 422


class CosignatureRecorded(BaseModel):
    size: int
    witnesses: list[str]


@tlog.get("/checkpoint", response_class=PlainTextResponse)
async def checkpoint(audit: AuditDep) -> PlainTextResponse:
    """The latest checkpoint and its cosignatures."""
    stored = await latest_checkpoint(audit.store)
    if stored is None:
        raise HTTPException(503, "no checkpoint has been published yet")
    audit.publisher.size = max(audit.publisher.size, stored.size)  # another replica's
    note = await served_note(audit.store, stored)
    return PlainTextResponse(note, headers={"Cache-Control": CHECKPOINT_CACHE})


@tlog.get("/tile/{path:path}", response_class=Response)
async def tile(path: str, audit: AuditDep) -> Response:
    """A tile or entry bundle of the current tree (C2SP tlog-tiles)."""
    full_path = f"tile/{path}"
    try:
        resource = parse_path(full_path)
    except TlogError:
        raise HTTPException(404, "not a tile path (c2sp.org/tlog-tiles)") from None
    if not in_tree(resource, audit.publisher.size):
        raise HTTPException(404, "beyond the current tree")
    data = await storage.read_resource(audit.store, full_path)
    if data is None:
        raise HTTPException(404, "no such tile")
    return Response(data, media_type=OCTET_STREAM, headers={"Cache-Control": IMMUTABLE})


@tlog.get("/vkey", response_class=PlainTextResponse)
async def vkey(audit: AuditDep) -> PlainTextResponse:
    """The log's verifier key, `origin+keyid+base64(0x01 || Ed25519 public key)`."""
    text = audit.signer.verifier().vkey() + "\n"
    return PlainTextResponse(text, headers={"Cache-Control": VKEY_CACHE})


@tlog.post("/cosignature", response_model=CosignatureRecorded)
async def cosignature(request: Request, audit: AuditDep) -> CosignatureRecorded:
    """Record a witness's cosignature (text/plain body: the cosigned checkpoint note)."""
    body = b""
    async for chunk in request.stream():  # bounded: never buffer more than one note
        body += chunk
        if len(body) > MAX_COSIGNED_NOTE:
            raise HTTPException(413, f"a cosigned note is at most {MAX_COSIGNED_NOTE} bytes")
    try:
        text = body.decode("utf-8")
        size, names = await add_cosignatures(
            audit.store, text, audit.signer.verifier(), audit.witnesses
        )
    except UnicodeDecodeError:
        raise HTTPException(400, "the note is not UTF-8") from None
    except CosignatureRefused as exc:
        raise HTTPException(COSIGNATURE_REFUSED_STATUS[type(exc)], str(exc)) from None
    return CosignatureRecorded(size=size, witnesses=names)


class LogEntry(BaseModel):
    """One leaf for people reading the log: its index, leaf hash and the entry as JSON (the
    entry exactly as stored; its canonical bytes are what the leaf hash covers)."""

    index: int
    leaf_hash: str
    entry: dict[str, Any]


@api.get("/entries", response_model=list[LogEntry])
async def entries(
    audit: AuditDep,
    case: Annotated[str | None, Query(max_length=128)] = None,
    start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LogEntry]:
    """Entries in index order (optionally only one subject's), with their leaf hashes."""
    query: dict[str, Any] = {"index": {"$gte": start}}
    if case is not None:
        query["subject"] = case
    found = audit.store.db[storage.ENTRIES].find(query).sort("index", 1).limit(limit)
    return [
        LogEntry(index=doc["_id"], leaf_hash=doc["leaf_hash"], entry=json.loads(doc["entry"]))
        async for doc in found
    ]


class KeyProofModel(BaseModel):
    """A key's `key.registered` entry and its RFC 9162 inclusion proof (base64 hashes, lowest
    level first) in the tree of the response's checkpoint."""

    index: int
    entry: str  # base64 of the exact leaf bytes
    inclusion: list[str]


class KeyProofs(BaseModel):
    checkpoint: str  # the signed note, as /checkpoint serves it
    size: int
    proofs: dict[str, KeyProofModel]  # by key id; a key not registered in that tree is absent


@api.get("/key-proofs", response_model=KeyProofs)
async def proofs_of_keys(
    audit: AuditDep, response: Response, key: Annotated[list[str] | None, Query()] = None
) -> KeyProofs:
    """Inclusion proofs of the keys' registrations in the latest checkpoint's tree."""
    # Checked here, not by FastAPI's validation, whose 422 echoes the input.
    asked = key or []
    if not 1 <= len(asked) <= MAX_PROVEN_KEYS:
        raise HTTPException(422, f"ask for 1 to {MAX_PROVEN_KEYS} keys (key=<key id>)")
    try:
        key_ids = sorted({check_key_id(kid) for kid in asked})
    except KeyFormatError:
        raise HTTPException(422, "a key is not a key id ('x25519:' and 64 hex digits)") from None
    stored = await latest_checkpoint(audit.store)
    if stored is None:
        raise HTTPException(503, "no checkpoint has been published yet")
    note = await served_note(audit.store, stored)
    proven = await key_proofs(audit.store, key_ids, stored.size)
    response.headers["Cache-Control"] = CHECKPOINT_CACHE  # it holds the checkpoint
    return KeyProofs(
        checkpoint=note,
        size=stored.size,
        proofs={
            kid: KeyProofModel(
                index=proof.index,
                entry=b64encode(proof.leaf),
                inclusion=[b64encode(h) for h in proof.inclusion],
            )
            for kid, proof in proven.items()
        },
    )


def _refuse_to_start(exc: Exception) -> None:
    """Say why on standard error: the logging policy keeps exception text out of logs, and
    this text holds only sizes, indices, hashes and paths."""
    log.critical("audit log refuses to start", extra={"error_type": type(exc).__name__})
    print(f"audit-log refuses to start: {exc}", file=sys.stderr, flush=True)


def create_app(settings: Settings | None = None, *, consume: bool = True) -> FastAPI:
    """The audit-log app; `consume=False` serves and integrates without reading Kafka."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings)
        producer: AIOKafkaProducer | None = None
        consumer: ConsumerRunner | None = None
        publisher: Publisher | None = None
        kafka: KafkaHealth | None = None
        kafka_probe: asyncio.Task[None] | None = None
        try:
            await storage.ensure_indexes(store)  # the audit log's own (storage.INDEXES)
            try:
                signer = log_signer(settings)
                witnesses = witness_keys(settings)
                latest = await check_store(store, signer.verifier())
            except (storage.StoreRewrittenError, WitnessConfigError) as exc:
                _refuse_to_start(exc)
                raise
            publisher = Publisher(store, signer, settings.audit_checkpoint_interval)
            publisher.size = 0 if latest is None else latest.size
            await publisher.start()
            if consume:
                producer = make_producer(settings)  # for dead letters
                await producer.start()
                consumer = sequencing_consumer(
                    settings, store, producer, AUDITED_TOPICS, Sequencer(store)
                )
                await consumer.start()
                kafka = KafkaHealth(producer)
                kafka_probe = asyncio.create_task(kafka.run(), name="kafka-health")
            app.state.audit = AuditLog(store, signer, witnesses, publisher, consumer, kafka)
            yield
        finally:
            await cancel_and_wait(kafka_probe)
            if consumer is not None:
                await consumer.stop()
            if producer is not None:
                await producer.stop()
            if publisher is not None:
                await publisher.stop()
            await store.close()

    app = FastAPI(title="Hotline audit log", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(tlog)
    app.include_router(api)
    answer_errors(app, {})  # no domain error of its own: the store's 503 and the 422s
    app.add_middleware(BodyLimit, limit=MAX_API_BODY, detail="the request is too large")

    @app.get("/healthz", include_in_schema=False)
    async def healthz(audit: AuditDep) -> JSONResponse:
        stopped = [name for name, task in audit.tasks().items() if not task.healthy()]
        return await health_answer(audit.store, audit.kafka, stopped, size=audit.publisher.size)

    return app
