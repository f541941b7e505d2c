"""Hand-out of an envelope to a principal: logged BEFORE the ciphertext leaves the service.

`disclose` publishes the `envelope.disclosed` event synchronously (Kafka acknowledges with
acks=all, the idempotent producer) before the caller may return the envelope, then keeps a
record of it in the service's own disclosures collection (`<service>_disclosures`, declared
in its `collections.py` with `disclosures_collection`; `_id` the event id). If Kafka cannot
take it within PUBLISH_TIMEOUT, or the record cannot be written, `DisclosureNotRecorded` is
raised (each service answers it with 503 and Retry-After) and nothing is handed out. So the
log never misses a hand-out that happened; it may show one that was refused (a publish that
timed out on our side and landed, or a record that failed after it). While the service's
probe knows Kafka to be away (`Runtime.kafka`), nothing is sent nor written: the refusal is
at once.

The event is published first, not written to an outbox and relayed: a hand-out is not state
that waits to be announced, it happens only once Kafka has its event, so an outbox entry
would add two writes (the entry, and marking it published) for nothing the log can miss.
"""

from __future__ import annotations

import asyncio

from pymongo import ASCENDING, IndexModel

from .bus import publish
from .envelope import EnvelopeLike, envelope_hash, envelope_recipients
from .events import EnvelopeClass, EnvelopeDisclosed, Principal, new_event
from .service import Runtime
from .store import Collection

# Seconds Kafka may take to acknowledge a hand-out's record (it takes milliseconds when up).
PUBLISH_TIMEOUT = 2.0


class DisclosureNotRecorded(RuntimeError):
    """The audit log could not record a hand-out now: the envelope must not leave."""

    retry_after = 5  # seconds a caller should wait before asking again (Retry-After)

    def __init__(self) -> None:
        super().__init__(
            "the audit log cannot record this disclosure now, so nothing was handed out; "
            f"try again in {self.retry_after} seconds"
        )


# How a service answers it (with `deps.answer_errors`): the caller may try again later.
DISCLOSURE_ERROR_STATUS: dict[type[Exception], int] = {DisclosureNotRecorded: 503}


def _name(service: str) -> str:
    return f"{service}_disclosures"


def disclosures_collection(service: str) -> Collection:
    """The declaration of `service`'s own disclosures collection."""
    return Collection(_name(service), (IndexModel([("case_id", ASCENDING)]),))


async def disclose(
    runtime: Runtime,
    case_id: str,
    envelope: EnvelopeLike,
    envelope_class: EnvelopeClass,
    principal: Principal,
) -> None:
    if not runtime.kafka.reachable:
        raise DisclosureNotRecorded()
    event = new_event(
        case_id,
        EnvelopeDisclosed(
            principal=principal,
            envelope_class=envelope_class,
            envelope_hash=envelope_hash(envelope),
            recipient_key_ids=sorted(envelope_recipients(envelope)),
        ),
    )
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await publish(runtime.producer, event)
        await runtime.store.db[_name(runtime.store.collections.service)].insert_one(
            {"_id": event.id, "case_id": case_id}
        )
    except Exception:  # noqa: BLE001 - whatever failed, the envelope must not leave
        raise DisclosureNotRecorded() from None
