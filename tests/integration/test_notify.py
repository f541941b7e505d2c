"""Notify's consumer handler (`add_to_digests`) called as its consumer calls it, with a Runtime
on the real store (a database of its own per test) and events parsed from their bytes.

The relay is not run: what is checked is the handler's durable effect, the digest items and
the `digest.issued` event each carries in its outbox (publishing is the outbox's own test).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from hotline.notify.collections import COLLECTIONS as NOTIFY_COLLECTIONS
from hotline.notify.consumer import add_to_digests
from hotline.shared import registry
from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope, envelope_hash, seal_envelope
from hotline.shared.events import Event, ReportSubmitted, new_event, parse_event
from hotline.shared.outbox import relay_for
from hotline.shared.reports import routing_metadata
from hotline.shared.service import Runtime
from hotline.shared.store import Store
from hotline.triage.collections import COLLECTIONS as TRIAGE_COLLECTIONS
from tests.support.registry import Party


@dataclass
class Setting:
    """A runtime of notify and, on the same database, the registry as triage writes it."""

    runtime: Runtime
    registry: Store

    @property
    def items(self) -> Any:
        return self.runtime.store.db.notify_items

    async def buyer(self, buyer_id: str, *factories: str) -> Party:
        party = Party.new()
        await registry.add_buyer(self.registry, buyer_id, buyer_id.title(), party.public_b64)
        for factory in factories:
            await registry.link(self.registry, buyer_id, factory)
        return party


@pytest.fixture
async def setting(test_settings: Settings, local_system: Any) -> AsyncIterator[Setting]:
    settings = test_settings.model_copy(update={"mongo_db": f"notify_{uuid.uuid4().hex[:12]}"})
    store = Store(settings, NOTIFY_COLLECTIONS)
    registry_store = Store(settings, TRIAGE_COLLECTIONS)
    await store.ensure_indexes()
    await registry_store.ensure_indexes()
    producer = make_producer(settings)
    await producer.start()
    try:
        yield Setting(
            Runtime(settings, store, producer, relay_for(store, producer)), registry_store
        )
    finally:
        await producer.stop()
        await store.client.drop_database(settings.mongo_db)
        await registry_store.close()
        await store.close()


def submitted(factory: str, sealed_to: dict[str, Party], **routing: Any) -> Event:
    """A `report.submitted` event as the consumer receives it (parsed from its bytes)."""
    case_id = str(uuid.uuid4())
    meta = routing_metadata(
        factory, routing.get("categories", ["wages"]), routing.get("urgent", False), "zh"
    )
    content = seal_envelope(
        b"wages withheld for three months",
        case_id=case_id,
        kind="content",
        routing=meta,
        recipients={party.key_id: party.public for party in sealed_to.values()},
    )
    identity = seal_envelope(
        b"Zhang, line 2",
        case_id=case_id,
        kind="identity",
        routing=meta,
        recipients={sealed_to["operator"].key_id: sealed_to["operator"].public},
    )
    data = ReportSubmitted(
        **meta, channel="phone", server_encrypted=False, content=content, identity=identity
    )
    return parse_event(new_event(case_id, data).to_bytes())


def content_of(event: Event) -> Envelope:
    return Envelope.model_validate(event.data["content"])


async def test_a_linked_buyer_gets_one_item_with_the_content_and_never_the_identity(
    setting: Setting,
) -> None:
    await registry.add_factory(setting.registry, "F-100", "Linked Toys", "CN")
    await registry.add_factory(setting.registry, "F-200", "Elsewhere", "CN")
    operator = Party.new()
    acme = await setting.buyer("acme", "F-100")
    await setting.buyer("other-brand", "F-200")
    event = submitted("F-100", {"operator": operator, "acme": acme}, categories=["wages", "hours"])

    await add_to_digests(setting.runtime, event)

    items = [doc async for doc in setting.items.find({})]
    assert [doc["_id"] for doc in items] == [f"acme:{event.subject}"], "only F-100's buyer"
    [item] = items
    assert {k: item[k] for k in ("buyer", "case_id", "factory", "categories", "urgent")} == {
        "buyer": "acme",
        "case_id": event.subject,
        "factory": "F-100",
        "categories": ["hours", "wages"],
        "urgent": False,
    }
    assert (item["language"], item["received"]) == ("zh", event.time)
    assert item["content"] == event.data["content"]
    assert "identity" not in item and event.data["identity"]["ciphertext"] not in str(item)
    [issued] = item["outbox"].values()
    assert issued["type"] == "digest.issued" and issued["subject"] == event.subject
    assert issued["data"] == {
        "buyer": "acme",
        "factory": "F-100",
        "envelope_hash": envelope_hash(content_of(event)),
        "recipient_key_ids": [acme.key_id],
    }


async def test_a_buyer_linked_after_the_report_was_sealed_gets_nothing(setting: Setting) -> None:
    await registry.add_factory(setting.registry, "F-300", "Late Link Garments", "BD")
    operator = Party.new()
    early = await setting.buyer("early-brand", "F-300")
    event = submitted("F-300", {"operator": operator, "early": early})
    await setting.buyer("late-brand", "F-300")  # after sealing: not among the recipients

    await add_to_digests(setting.runtime, event)

    buyers = [doc["buyer"] async for doc in setting.items.find({"case_id": event.subject})]
    assert buyers == ["early-brand"], "an item the buyer could not open is not issued"


async def test_a_redelivered_event_changes_nothing(setting: Setting) -> None:
    await registry.add_factory(setting.registry, "F-400", "Twice Told", "KH")
    operator = Party.new()
    one = await setting.buyer("brand-one", "F-400")
    two = await setting.buyer("brand-two", "F-400")
    event = submitted("F-400", {"operator": operator, "one": one, "two": two}, urgent=True)

    await add_to_digests(setting.runtime, event)
    first = {doc["_id"]: doc async for doc in setting.items.find({})}
    await add_to_digests(setting.runtime, event)
    await add_to_digests(setting.runtime, parse_event(event.to_bytes()))
    after = {doc["_id"]: doc async for doc in setting.items.find({})}

    assert sorted(first) == [f"brand-one:{event.subject}", f"brand-two:{event.subject}"]
    assert after == first, "no second item, no second digest.issued event"


async def test_a_factory_without_linked_buyers_gets_no_item(setting: Setting) -> None:
    await registry.add_factory(setting.registry, "F-500", "Unsold", "CN")
    event = submitted("F-500", {"operator": Party.new()})
    await add_to_digests(setting.runtime, event)
    assert await setting.items.count_documents({}) == 0
