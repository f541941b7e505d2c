"""Notify: puts each submitted case into the digest of every buyer linked to its factory,
and serves a buyer its own digest (content only: identity never reaches notify's store)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from hotline.shared import registry
from hotline.shared.auth import Principal, require_role
from hotline.shared.config import Settings
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import envelope_hash, envelope_recipients
from hotline.shared.events import DigestIssued, Event, ReportSubmitted, event_data, new_event
from hotline.shared.events import Principal as EventPrincipal
from hotline.shared.service import Runtime, add_health, runtime_of, service_lifespan
from hotline.shared.store import with_outbox

AUDIENCE = "hotline-notify"
BUYER = "buyer"
log = logging.getLogger("hotline.notify")
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
BuyerDep = Annotated[Principal, Depends(require_role(BUYER))]


async def add_to_digests(runtime: Runtime, event: Event) -> None:
    """One digest item per linked buyer whose key the content was sealed to; idempotent."""
    report = event_data(event, ReportSubmitted)
    sealed_to = envelope_recipients(report.content)
    for buyer in await registry.buyers_of(runtime.store, report.factory):
        if buyer["key_id"] not in sealed_to:
            # Linked after the report was sealed: this buyer cannot read it, so it is not sent.
            log.info("buyer key not a recipient", extra={"case_id": event.subject})
            continue
        issued = new_event(
            "digest.issued",
            event.subject,
            DigestIssued(
                buyer=buyer["_id"],
                factory=report.factory,
                envelope_hash=envelope_hash(report.content),
                recipient_key_ids=[buyer["key_id"]],
            ),
        )
        item = with_outbox(
            {
                "_id": f"{buyer['_id']}:{event.subject}",
                "buyer": buyer["_id"],
                "case_id": event.subject,
                "factory": report.factory,
                "categories": report.categories,
                "urgent": report.urgent,
                "language": report.language,
                "received": event.time,
                "content": report.content,
            },
            issued,
        )
        try:
            await runtime.store.db.notify_items.insert_one(item)
        except DuplicateKeyError:
            continue  # this delivery was already applied
    runtime.relay.poke()


router = APIRouter(prefix="/api", tags=["digests"])


class DigestItem(BaseModel):
    case_id: str
    factory: str
    categories: list[str]
    urgent: bool
    language: str
    received: str
    content: dict[str, Any]


@router.get("/digest", response_model=list[DigestItem])
async def my_digest(runtime: RuntimeDep, buyer: BuyerDep) -> list[DigestItem]:
    """The calling buyer's cases (its `org` claim), content envelopes only."""
    if not buyer.org:
        raise HTTPException(403, "this account has no buyer organisation (`org` claim)")
    items = [
        doc async for doc in runtime.store.db.notify_items.find({"buyer": buyer.org}).sort("_id", 1)
    ]
    who = EventPrincipal(role=BUYER, org=buyer.org, subject=buyer.subject)
    for doc in items:
        await disclose(runtime, doc["case_id"], doc["content"], "content", who)
    return [DigestItem(**doc) for doc in items]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "notify", ["hotline.report.submitted"], lambda event: add_to_digests(runtime, event)
        )

    app = FastAPI(
        title="Hotline notify",
        lifespan=service_lifespan(settings, AUDIENCE, ["notify_items", "disclosures"], setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router)
    add_health(app)
    return app
