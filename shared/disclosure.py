"""Hand-out of an envelope to a principal: logged BEFORE the ciphertext leaves the service.

Each service that hands out envelopes keeps its disclosures in a collection of its own
(`<service>_disclosures`, declared in its `collections.py` with `disclosures_collection`),
so its relay publishes only what it wrote. `disclose` writes the disclosure as one
document with its `envelope.disclosed` event in the outbox and publishes it synchronously
(Kafka acknowledges with acks=all) before the caller may return the envelope, then marks
the entry published so no relay publishes it again. If Kafka cannot take it within
PUBLISH_TIMEOUT, `DisclosureNotRecorded` is raised (each service answers it with 503 and
Retry-After) and nothing is handed out; the entry is then left to the relay, so the log may
show a hand-out that was refused, never miss one that happened. While the service's probe
knows Kafka to be away (`Runtime.kafka`), nothing is written at all: the refusal is at once.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from .envelope import EnvelopeLike, envelope_hash, envelope_recipients
from .events import EnvelopeClass, EnvelopeDisclosed, Principal, new_event
from .outbox import outbox_collection, outbox_of
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
    return outbox_collection(_name(service), IndexModel([("case_id", ASCENDING)]))


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
    disclosures = outbox_of(runtime.store, _name(runtime.store.collections.service))
    try:
        await disclosures.insert_and_publish(
            {"_id": event.id, "case_id": case_id},
            event,
            runtime.producer,
            timeout=PUBLISH_TIMEOUT,
        )
    except Exception:  # noqa: BLE001 - whatever failed, the envelope must not leave
        raise DisclosureNotRecorded() from None
