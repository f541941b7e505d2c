"""The buyer's digest API (role buyer, its own `org` only) and notify's verifier key.

    GET  /api/digests?since=N&limit=L   the buyer's digests with seq > N, ascending, at most
                                        L (default 50, max 200), as digest files:
                                        {"digests": [...], "next": <last seq or N>, "more"}
    POST /api/digests/issue             issue now from what is pending: 201 with the digest
                                        file, 204 when nothing is pending
    GET  /vkey                          text/plain, the digest key (C2SP signed-note vkey)

A pull costs what it returns: one range read of the buyer's digests after `since` on their
unique `slot` (buyer and seq in one indexed string), and the stored bodies are sent as they
were signed, never parsed again. Each digest's content envelopes are disclosed
(one `envelope.disclosed` each, in the audit log before the response leaves) the first time
the digest is handed out; its `disclosed` flag is set after the disclosures, so a crash in
between discloses again on the next pull and never skips one. Two pulls racing over a new
digest may both disclose it: the log may show a hand-out twice, never miss one.

A case whose content retention deleted (notify's case state has `deleted`, set before
erasure.py touches any copy) is taken out of what is handed out: its items leave with
content null and no attachments, and its envelope is not disclosed, even while erasure.py
has not reached the stored digest yet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from hotline.shared.auth import Principal
from hotline.shared.deps import BuyerDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.events import Principal as EventPrincipal
from hotline.shared.service import Runtime
from hotline.shared.store import Document, Store

from .collections import NOTIFY_CASES, NOTIFY_DIGESTS
from .digest import canonical
from .issuance import Issuer, after
from .questions import buyer_org

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_SEQ = 2**53  # beyond any seq, and within what every JSON reader takes exactly
DISCLOSURES_AT_ONCE = 16  # hand-outs being recorded concurrently for one pull
VKEY_CACHE = "public, max-age=300"
# What a pull reads of a digest: the signed bytes and the flag, not the bookkeeping.
SERVED = {"seq": 1, "body": 1, "note": 1, "disclosed": 1, "cases": 1}

digests = APIRouter(prefix="/api/digests", tags=["digests"])
vkey = APIRouter(tags=["digests"])


async def issuer_of(request: Request) -> Issuer:
    issuer: Issuer = request.app.state.issuer
    return issuer


IssuerDep = Annotated[Issuer, Depends(issuer_of)]


class DigestFile(BaseModel):
    """A signed digest as a buyer keeps it (services/notify/digest.py holds its format)."""

    digest: dict[str, Any]
    note: str


class DigestPage(BaseModel):
    digests: list[DigestFile]
    next: int  # the `since` of the next pull: the last seq returned, or the one asked
    more: bool  # digests after `next` exist already


def digest_file_json(document: Document) -> str:
    """The digest file of a stored digest, as JSON text: the body exactly as signed."""
    return f'{{"digest":{document["body"]},"note":{json.dumps(document["note"])}}}'


def digest_file(document: Document) -> dict[str, Any]:
    """The digest file of a stored digest (what a webhook delivers, for one)."""
    parsed: dict[str, Any] = json.loads(digest_file_json(document))
    return parsed


async def deleted_cases(store: Store, case_ids: Iterable[str]) -> dict[str, str]:
    """The cases among `case_ids` whose content is deleted, with the deletion's hour (one
    read of notify's case states by id)."""
    wanted = sorted(set(case_ids))
    if not wanted:
        return {}
    found = store.db[NOTIFY_CASES.name].find(
        {"_id": {"$in": wanted}, "deleted": {"$exists": True}}, {"deleted": 1}
    )
    return {doc["_id"]: doc["deleted"] async for doc in found}


def redact_body(body: str, case_ids: Collection[str]) -> str:
    """A digest's stored body (canonical JSON text) with the items of `case_ids` holding
    nothing sealed: content None, no attachments. Pure; unchanged when nothing is left to
    redact."""
    if not case_ids:
        return body
    parsed: Document = json.loads(body)
    changed = False
    for item in parsed["items"]:
        if item["case_id"] in case_ids and (item["content"] is not None or item["attachments"]):
            item["content"], item["attachments"] = None, []
            changed = True
    return canonical(parsed).decode() if changed else body


async def without_deleted(store: Store, documents: list[Document]) -> list[Document]:
    """`documents` (stored digests, with their `cases`) as they may be handed out now: the
    cases deleted since they were stored redacted from their bodies (a deletion under way:
    erasure.py redacts the stored ones too)."""
    deleted = await deleted_cases(store, (c for doc in documents for c in doc["cases"]))
    if not deleted:
        return documents
    return [
        {**doc, "body": redact_body(doc["body"], deleted)}
        if deleted.keys() & set(doc["cases"])
        else doc
        for doc in documents
    ]


async def hand_out(runtime: Runtime, documents: list[Document], principal: EventPrincipal) -> None:
    """Record the disclosure of the content envelopes of every digest of `documents` not
    handed out before, then mark them handed out. Raises DisclosureNotRecorded (503) if the
    audit log cannot take one: nothing may leave then."""
    fresh = [doc for doc in documents if not doc.get("disclosed")]
    if not fresh:
        return
    limit = asyncio.Semaphore(DISCLOSURES_AT_ONCE)

    async def one(case_id: str, envelope: dict[str, Any]) -> None:
        async with limit:
            await disclose(runtime, case_id, envelope, "content", principal)

    await asyncio.gather(
        *(
            one(item["case_id"], item["content"])
            for doc in fresh
            for item in json.loads(doc["body"])["items"]
            if item["content"] is not None
        )
    )
    collection = runtime.store.db[NOTIFY_DIGESTS.name]
    for doc in fresh:
        await collection.update_one({"_id": doc["_id"]}, {"$set": {"disclosed": True}})


def _principal(buyer: Principal, org: str) -> EventPrincipal:
    return EventPrincipal(role=Role.BUYER, org=org, subject=buyer.subject)


@digests.get("", response_model=DigestPage)
async def pull(
    runtime: RuntimeDep,
    buyer: BuyerDep,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Response:
    """The calling buyer's digests after `since`, oldest first."""
    org = buyer_org(buyer)
    found = (
        runtime.store.db[NOTIFY_DIGESTS.name]
        .find(after(org, since), SERVED)
        .sort("slot", 1)
        .limit(limit + 1)
    )
    documents = await found.to_list(None)
    page, more = documents[:limit], len(documents) > limit
    page = await without_deleted(runtime.store, page)
    await hand_out(runtime, page, _principal(buyer, org))
    files = ",".join(digest_file_json(doc) for doc in page)
    last = page[-1]["seq"] if page else since
    text = f'{{"digests":[{files}],"next":{last},"more":{json.dumps(more)}}}'
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


@digests.post(
    "/issue",
    status_code=status.HTTP_201_CREATED,
    response_model=DigestFile,
    responses={204: {"description": "nothing is pending: no digest was issued"}},
)
async def issue_now(runtime: RuntimeDep, issuer: IssuerDep, buyer: BuyerDep) -> Response:
    """Issue the calling buyer's digest now, from what is pending (for operators and tests:
    the schedule and the urgent trigger issue the others)."""
    org = buyer_org(buyer)
    document = await issuer.issue(org, "on-request")
    if document is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    [document] = await without_deleted(runtime.store, [document])
    await hand_out(runtime, [document], _principal(buyer, org))
    return Response(
        digest_file_json(document),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@vkey.get("/vkey", response_class=PlainTextResponse)
async def digest_vkey(issuer: IssuerDep) -> PlainTextResponse:
    """The digest key, `origin+keyid+base64(0x01 || Ed25519 public key)`."""
    text = issuer.signer.verifier().vkey() + "\n"
    return PlainTextResponse(text, headers={"Cache-Control": VKEY_CACHE})
