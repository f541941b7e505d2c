"""Audit log: every event on every topic becomes a leaf of an RFC 9162 Merkle tree.

This module wires the consumer (sequencing) and the public read API. It needs no token:
the log is public, and what it holds is hashes and metadata only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query

from hotline.shared.config import Settings
from hotline.shared.events import DATA_MODELS, Event, topic_for
from hotline.shared.service import Runtime, add_health, runtime_of, service_lifespan

from .sequencer import Sequencer

AUDIENCE = "hotline-audit-log"
AUDITED_TOPICS = sorted({topic_for(event_type) for event_type, _ in DATA_MODELS})
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
router = APIRouter(prefix="/api", tags=["log"])


@router.get("/entries")
async def entries(
    runtime: RuntimeDep,
    case: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Entries in index order (optionally only one subject's), with their leaf hashes."""
    query: dict[str, Any] = {"_id": {"$gte": start}}
    if case is not None:
        query["subject"] = case
    found = runtime.store.db.audit_entries.find(query).sort("_id", 1).limit(limit)
    return [
        {"index": doc["_id"], "leaf_hash": doc["leaf_hash"], "entry": json.loads(doc["entry"])}
        async for doc in found
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        sequencer = Sequencer(runtime.store)

        async def append(event: Event) -> None:
            await sequencer.sequence(event)

        runtime.consume("audit-log", AUDITED_TOPICS, append)

    app = FastAPI(
        title="Hotline audit log",
        lifespan=service_lifespan(settings, AUDIENCE, [], setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router)
    add_health(app)
    return app
