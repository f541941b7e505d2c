"""Buyers' webhooks: the endpoints a buyer registers (role buyer, its own `org` only), and
what is queued for them: each digest issued for the buyer, and an urgent alert per critical
or escalated case (Standard Webhooks; the deliverer, deliverer.py, sends them).

Routes: `POST /api/webhooks` {"url"} registers an endpoint and answers its signing secret
(`whsec_...`) once; `GET` lists the buyer's own (never a secret); `DELETE /{id}` removes one
with its deliveries; `GET /{id}/deliveries` lists its deliveries; `POST /{id}/redeliver`
{"delivery": id} or {"dead": true} queues again one delivery or every dead one. Another
buyer's endpoint is 404, as if it did not exist. URLs are checked by endpoints.py (422).

What is queued (`enqueue`), idempotent by `_id` at every step, so a redelivered event
changes nothing:
- a message per buyer (`notify_webhook_messages`, `<buyer>:<message id>`) holding the exact
  payload every attempt sends; message ids are the `webhook-id` a receiver de-duplicates by:
  `digest:<buyer>:<seq>` (payload: the digest file, as `hotline digests verify` reads it)
  and `alert:<case id>` (payload: type "alert", case id, the routing metadata the envelope
  is bound to, severity, the content envelope, and the seq of the digest listing it);
- a delivery per endpoint of the buyer (`notify_deliveries`, `<endpoint>:<message id>`).

When: a consumer of notify's own `digest.issued` (group "notify-webhooks") queues the digest,
and an alert for each case in it that is critical or escalated (the urgent digest's own
trigger, `issuance.is_critical`) where the item is the case's report, or the digest is the
urgent one of an escalation: the same moment as the urgent digest, whichever of the report
and the rating came second, and one hop of Kafka later. A case's alert is made once per
buyer, by the first digest that calls for it (the message remembers that digest): a later
change of a critical case makes none, and an endpoint registered later gets no old alert.

The envelopes a message carries are handed out when it is first sent: the deliverer logs
that hand-out before it sends (deliverer.py, `disclose_message`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from hotline.shared.deps import BuyerDep, RuntimeDep
from hotline.shared.events import Event, EventType, coarse_now, topic_for
from hotline.shared.service import Runtime
from hotline.shared.store import Document, insert_new

from .collections import (
    NOTIFY_CASES,
    NOTIFY_DELIVERIES,
    NOTIFY_DIGESTS,
    NOTIFY_ITEMS,
    NOTIFY_WEBHOOK_MESSAGES,
    NOTIFY_WEBHOOKS,
)
from .deliverer import Deliverer, lease, now_ms, status_fields
from .digests import digest_file_json
from .endpoints import MAX_URL_LENGTH, EndpointRefused, checked_targets
from .issuance import is_critical
from .questions import buyer_org

MAX_ENDPOINTS = 10  # per buyer
MAX_LISTED_DELIVERIES = 200
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes, base64 after `whsec_`
ENDPOINT_ID = re.compile(r"^wh_[0-9a-f]{16}$")

webhooks = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=MAX_URL_LENGTH)


class WebhookCreated(BaseModel):
    id: str
    url: str
    secret: str  # shown here only, once


class WebhookPublic(BaseModel):
    id: str
    url: str
    created: str  # the hour it was registered
    pending: int  # deliveries being tried
    dead: int  # deliveries that ran out of tries (redeliver them)


class DeliveryPublic(BaseModel):
    id: str
    message_id: str  # the `webhook-id` header
    status: str
    attempts: int
    last_status: int | None  # the receiver's last HTTP status, if it answered
    last_error: str | None  # why the last attempt failed: `http-503`, `ConnectError`, ...


class Redelivery(BaseModel):
    """Exactly one of: a delivery id (`<endpoint>:<message id>`), or every dead one."""

    model_config = ConfigDict(extra="forbid")
    delivery: str | None = Field(default=None, max_length=300)
    dead: bool = False


class Redelivered(BaseModel):
    redelivered: int


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def by_status(endpoint_id: str, status: str) -> dict[str, str]:
    """The query for an endpoint's deliveries of one status (an indexed key)."""
    return {"endpoint_status": f"{endpoint_id}:{status}"}


NO_SUCH_WEBHOOK = "your organisation has no such webhook"  # anyone else's, or none


async def own_endpoint(runtime: Runtime, org: str, endpoint_id: str) -> Document:
    """The caller's endpoint `endpoint_id`; 404 for anyone else's, or none."""
    found: Document | None = None
    if ENDPOINT_ID.match(endpoint_id):
        found = await runtime.store.db[NOTIFY_WEBHOOKS.name].find_one(
            {"_id": endpoint_id, "buyer": org}
        )
    if found is None:
        raise HTTPException(404, NO_SUCH_WEBHOOK)
    return found


@webhooks.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def add_webhook(body: WebhookCreate, runtime: RuntimeDep, buyer: BuyerDep) -> WebhookCreated:
    """Register an HTTPS endpoint for the caller's organisation; its secret is shown once."""
    org = buyer_org(buyer)
    try:
        await checked_targets(body.url, runtime.settings)
    except EndpointRefused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    endpoints = runtime.store.db[NOTIFY_WEBHOOKS.name]
    registered = await endpoints.find({"buyer": org}, {"_id": 1}).to_list(MAX_ENDPOINTS)
    if len(registered) >= MAX_ENDPOINTS:
        raise HTTPException(409, f"an organisation has at most {MAX_ENDPOINTS} webhooks")
    endpoint = {
        "_id": f"wh_{secrets.token_hex(8)}",
        "buyer": org,
        "url": body.url,
        "secret": new_secret(),
        "created": coarse_now(),
    }
    await endpoints.insert_one(endpoint)
    return WebhookCreated(id=endpoint["_id"], url=endpoint["url"], secret=endpoint["secret"])


@webhooks.get("", response_model=list[WebhookPublic])
async def list_webhooks(runtime: RuntimeDep, buyer: BuyerDep) -> list[WebhookPublic]:
    """The caller's organisation's endpoints, with how many deliveries are pending and dead."""
    org = buyer_org(buyer)
    deliveries = runtime.store.db[NOTIFY_DELIVERIES.name]
    listed = []
    found = runtime.store.db[NOTIFY_WEBHOOKS.name].find({"buyer": org}, {"secret": 0})
    for endpoint in await found.sort("_id", 1).to_list(MAX_ENDPOINTS):
        counts = {
            state: len(
                await deliveries.find(by_status(endpoint["_id"], state), {"_id": 1}).to_list(None)
            )
            for state in ("pending", "dead")
        }
        listed.append(
            WebhookPublic(
                id=endpoint["_id"], url=endpoint["url"], created=endpoint["created"], **counts
            )
        )
    return listed


@webhooks.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_webhook(endpoint_id: str, runtime: RuntimeDep, buyer: BuyerDep) -> Response:
    """Remove an endpoint and its deliveries (a delivery in flight finds it gone and stops)."""
    endpoint = await own_endpoint(runtime, buyer_org(buyer), endpoint_id)
    removed = await runtime.store.db[NOTIFY_WEBHOOKS.name].delete_one({"_id": endpoint["_id"]})
    await runtime.store.db[NOTIFY_DELIVERIES.name].delete_many({"endpoint": endpoint["_id"]})
    if removed.deleted_count == 0:  # a concurrent call removed it first: only one says 204
        raise HTTPException(404, NO_SUCH_WEBHOOK)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@webhooks.get("/{endpoint_id}/deliveries", response_model=list[DeliveryPublic])
async def list_deliveries(
    endpoint_id: str,
    runtime: RuntimeDep,
    buyer: BuyerDep,
    state: str | None = Query(default=None, alias="status", pattern="^(pending|delivered|dead)$"),
    limit: int = Query(default=50, ge=1, le=MAX_LISTED_DELIVERIES),
) -> list[DeliveryPublic]:
    """An endpoint's deliveries (of one status, if given), by id."""
    endpoint = await own_endpoint(runtime, buyer_org(buyer), endpoint_id)
    query = {"endpoint": endpoint["_id"]} if state is None else by_status(endpoint["_id"], state)
    found = runtime.store.db[NOTIFY_DELIVERIES.name].find(query).sort("_id", 1).limit(limit)
    return [
        DeliveryPublic(
            id=doc["_id"],
            message_id=doc["message_id"],
            status=doc["status"],
            attempts=doc["attempts"],
            last_status=doc.get("last_status"),
            last_error=doc.get("last_error"),
        )
        for doc in await found.to_list(limit)
    ]


@webhooks.post(
    "/{endpoint_id}/redeliver", status_code=status.HTTP_202_ACCEPTED, response_model=Redelivered
)
async def redeliver(
    endpoint_id: str, body: Redelivery, runtime: RuntimeDep, buyer: BuyerDep
) -> Redelivered:
    """Queue again one delivery (dead or delivered) or every dead one, with a fresh schedule
    of attempts; sent with the same `webhook-id`, so a receiver that has it ignores it."""
    endpoint = await own_endpoint(runtime, buyer_org(buyer), endpoint_id)
    if (body.delivery is None) == (not body.dead):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            'give exactly one of {"delivery": id} or {"dead": true}',
        )
    deliveries = runtime.store.db[NOTIFY_DELIVERIES.name]
    again = {
        "$set": {
            **status_fields(endpoint["_id"], "pending"),
            "attempts": 0,
            "next_attempt": now_ms(),
        },
        "$unset": {"finished": ""},
    }
    if body.dead:
        result = await deliveries.update_many(by_status(endpoint["_id"], "dead"), again)
        return Redelivered(redelivered=result.modified_count)
    found = await deliveries.find_one({"_id": body.delivery, "endpoint": endpoint["_id"]})
    if found is None:
        raise HTTPException(404, "this webhook has no such delivery")
    if found["status"] == "pending":
        raise HTTPException(409, "this delivery is pending already: it is being tried")
    result = await deliveries.update_one(
        {"_id": found["_id"], "status": found["status"], "attempts": found["attempts"]}, again
    )
    if result.modified_count != 1:
        raise HTTPException(409, "this delivery changed meanwhile: list it and try again")
    return Redelivered(redelivered=1)


# --- what is queued ----------------------------------------------------------------------


def digest_message_id(buyer: str, seq: int) -> str:
    return f"digest:{buyer}:{seq}"


def alert_message_id(case_id: str) -> str:
    return f"alert:{case_id}"


def payload_text(payload: Document) -> str:
    """The exact body every attempt of a message sends (and signs)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


async def enqueue(
    runtime: Runtime,
    buyer: str,
    messages: Sequence[tuple[str, str]],
    source: str,
    *,
    claimed: bool = False,
) -> list[Document]:
    """Queue each of `messages` (message id, the body as sent) for each of the buyer's
    endpoints; the deliveries queued now. `source` is the digest that made them: a message
    made by another digest already is not queued again (else idempotent by `_id`). The
    endpoints are read once, the messages and then their deliveries inserted in one
    unordered insert each (a digest of many urgent cases made four writes per alert).
    `claimed`: the deliveries are written claimed (a lease, as the deliverer's claim) for
    the caller to hand to this process's deliverer (`Deliverer.take`), which saves each a
    claim; if the process dies first, the lease runs out and any deliverer sends them."""
    endpoints = runtime.store.db[NOTIFY_WEBHOOKS.name].find({"buyer": buyer}, {"_id": 1})
    endpoint_ids = [doc["_id"] for doc in await endpoints.to_list(MAX_ENDPOINTS)]
    if not endpoint_ids or not messages:
        return []
    made = [
        {
            "_id": f"{buyer}:{message_id}",
            "buyer": buyer,
            "message_id": message_id,
            "payload": payload,
            "source": source,
            "disclosed": False,
            "created": coarse_now(),
        }
        for message_id, payload in messages
    ]
    collection = runtime.store.db[NOTIFY_WEBHOOK_MESSAGES.name]
    refused = {made[index]["_id"] for index in await insert_new(collection, made)}
    if refused:  # there already: queued now only if this digest made it (a redelivery)
        found = collection.find({"_id": {"$in": sorted(refused)}}, {"source": 1})
        refused -= {doc["_id"] async for doc in found if doc["source"] == source}
    deliveries = [
        {
            "_id": f"{endpoint_id}:{message['message_id']}",
            "endpoint": endpoint_id,
            "buyer": buyer,
            "message": message["_id"],
            "message_id": message["message_id"],
            **status_fields(endpoint_id, "pending"),
            "attempts": 0,
            **(lease() if claimed else {"next_attempt": now_ms()}),
            "created": coarse_now(),
        }
        for message in made
        if message["_id"] not in refused
        for endpoint_id in endpoint_ids
    ]
    if not deliveries:
        return []
    queued_before = await insert_new(runtime.store.db[NOTIFY_DELIVERIES.name], deliveries)
    # Those there already were queued by an earlier delivery of the event.
    return [delivery for index, delivery in enumerate(deliveries) if index not in queued_before]


class DigestMissing(LookupError):
    """A `digest.issued` event whose digest is not in the store (the handler is retried)."""


async def enqueue_digest(runtime: Runtime, event: Event, deliverer: Deliverer) -> None:
    """The `digest.issued` handler: the alerts of the digest's critical cases, then the
    digest, handed to this process's deliverer as they are queued."""
    stored = await runtime.store.db[NOTIFY_DIGESTS.name].find_one({"_id": event.subject})
    if stored is None:
        raise DigestMissing(f"digest {event.subject} is not in the store")
    buyer, seq, source = stored["buyer"], stored["seq"], stored["_id"]
    alerts = await alerts_of(runtime, stored, json.loads(stored["body"])["items"])
    messages = [(alert_message_id(alert["case_id"]), payload_text(alert)) for alert in alerts]
    messages.append((digest_message_id(buyer, seq), digest_file_json(stored)))  # as signed
    queued = await enqueue(runtime, buyer, messages, source, claimed=True)
    from .erasure import redact_queued  # (erasure reads this module's message ids)

    await redact_queued(runtime.store, stored)  # a deletion handled while these were built
    deliverer.take(queued)


async def alerts_of(
    runtime: Runtime, digest: Document, items: Sequence[Document]
) -> list[Document]:
    """The alert payloads of those of a digest's items that call for one, in item order: the
    item's case is critical or escalated (the urgent trigger), and the item is the case's
    report, or the digest is the urgent one of an escalation. A critical case's later
    changes make no alert. The cases' states are read at once, and so are the buyer's
    records of the reports a "changed" item stands for."""
    candidates = [item for item in items if item["change"] == "new" or digest["reason"] == "urgent"]
    if not candidates:
        return []
    case_ids = list(dict.fromkeys(item["case_id"] for item in candidates))
    found = runtime.store.db[NOTIFY_CASES.name].find({"_id": {"$in": case_ids}})
    cases = {doc["_id"]: doc async for doc in found}
    critical = [item for item in candidates if is_critical(cases.get(item["case_id"]))]

    # A "changed" item carries no envelope: it is the buyer's record of the report.
    def record_of(case_id: str) -> str:
        return f"{digest['buyer']}:{case_id}"

    wanted = [record_of(item["case_id"]) for item in critical if item["content"] is None]
    reports: dict[str, Any] = {}
    if wanted:
        records = runtime.store.db[NOTIFY_ITEMS.name].find({"_id": {"$in": wanted}}, {"content": 1})
        reports = {doc["_id"]: doc["content"] async for doc in records}
    return [
        {
            "type": "alert",
            "case_id": item["case_id"],
            "factory": item["factory"],
            "categories": item["categories"],
            "urgent": item["urgent"],
            "language": item["language"],
            "severity": cases[item["case_id"]].get("severity") or "critical",
            "content": item["content"]
            if item["content"] is not None
            else reports.get(record_of(item["case_id"])),
            "digest_seq": digest["seq"],
        }
        for item in critical
    ]


DIGESTS_ISSUED = topic_for(EventType.DIGEST_ISSUED)


def setup(runtime: Runtime) -> None:
    """Notify's webhook work: the consumer that queues, and the deliverer task that sends."""
    deliverer = Deliverer(runtime)
    runtime.consume(
        "notify-webhooks",
        [DIGESTS_ISSUED],
        lambda event: enqueue_digest(runtime, event, deliverer),
        deduplicate=False,  # idempotent by construction: messages and deliveries by `_id`
    )
    runtime.background("webhook-deliverer", deliverer.run)
