"""The buyer's digest API (role buyer, its own `org` only)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from hotline.shared.deps import BuyerDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope
from hotline.shared.events import Principal as EventPrincipal

digests = APIRouter(prefix="/api/digest", tags=["digests"])


class DigestItem(BaseModel):
    case_id: str
    factory: str
    categories: list[str]
    urgent: bool
    language: str
    received: str
    content: Envelope


@digests.get("", response_model=list[DigestItem])
async def my_digest(runtime: RuntimeDep, buyer: BuyerDep) -> list[DigestItem]:
    """The calling buyer's cases (its `org` claim), content envelopes only."""
    if not buyer.org:
        raise HTTPException(403, "this account has no buyer organisation (`org` claim)")
    items = [
        doc async for doc in runtime.store.db.notify_items.find({"buyer": buyer.org}).sort("_id", 1)
    ]
    digest = [DigestItem(**doc) for doc in items]  # validated before anything is disclosed
    who = EventPrincipal(role=Role.BUYER, org=buyer.org, subject=buyer.subject)
    for doc in items:
        await disclose(runtime, doc["case_id"], doc["content"], "content", who)
    return digest
