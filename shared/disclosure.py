"""Hand-out of an envelope to a principal: logged BEFORE the ciphertext leaves the service.

The disclosure is written as one document with its `envelope.disclosed` event in the
outbox, and that outbox is published synchronously (Kafka acknowledges with acks=all)
before the caller may return the envelope. If Kafka cannot take it, the request fails
with 503 and nothing is handed out; the relay publishes the entry later anyway.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from .envelope import envelope_hash, envelope_recipients
from .events import EnvelopeClass, EnvelopeDisclosed, Principal, new_event
from .service import Runtime
from .store import publish_outbox, with_outbox


async def disclose(
    runtime: Runtime,
    case_id: str,
    envelope: dict[str, Any],
    envelope_class: EnvelopeClass,
    principal: Principal,
) -> None:
    event = new_event(
        case_id,
        EnvelopeDisclosed(
            principal=principal,
            envelope_class=envelope_class,
            envelope_hash=envelope_hash(envelope),
            recipient_key_ids=sorted(envelope_recipients(envelope)),
        ),
    )
    document = with_outbox({"_id": event.id, "case_id": case_id}, event)
    collection = runtime.store.db.disclosures
    await collection.insert_one(document)
    try:
        await publish_outbox(collection, document, runtime.producer)
    except Exception:  # noqa: BLE001 - whatever failed, the envelope must not leave
        raise HTTPException(
            503, "the audit log cannot record this disclosure now; try again"
        ) from None
