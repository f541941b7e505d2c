"""Notify's consumer handler (`add_to_digests`) called as its consumer calls it, with an
Issuer on the real store (a database of its own per test) and events parsed from their bytes.

What is checked is the handler's durable effect: the buyers' records of the report (what
their next digests will hold). A record announces nothing: a digest does, when it is issued
(tests/integration/test_digests.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hotline.notify.consumer import add_to_digests
from hotline.shared import registry
from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope
from hotline.shared.events import parse_event
from tests.support.digests import NotifyStore, notify_store, report_event
from tests.support.registry import Party


@pytest.fixture
async def setting(test_settings: Settings, local_system: Any) -> AsyncIterator[NotifyStore]:
    async with notify_store(test_settings) as setting:
        yield setting


async def test_a_linked_buyer_gets_one_item_with_the_content_and_never_the_identity(
    setting: NotifyStore,
) -> None:
    await registry.add_factory(setting.registry, "F-100", "Linked Toys", "CN")
    await registry.add_factory(setting.registry, "F-200", "Elsewhere", "CN")
    operator = Party.new()
    acme = await setting.buyer("acme", "F-100")
    await setting.buyer("other-brand", "F-200")
    event = report_event(
        "F-100", {"operator": operator, "acme": acme}, categories=["wages", "hours"]
    )

    await add_to_digests(setting.issuer, event)

    items = [doc async for doc in setting.items.find({})]
    assert [doc["_id"] for doc in items] == [f"acme:{event.subject}"], "only F-100's buyer"
    [item] = items
    fields = ("buyer", "n", "case_id", "change", "factory", "categories", "urgent")
    assert {k: item[k] for k in fields} == {
        "buyer": "acme",
        "n": 1,
        "case_id": event.subject,
        "change": "new",
        "factory": "F-100",
        "categories": ["hours", "wages"],
        "urgent": False,
    }
    assert (item["language"], item["received"]) == ("zh", event.time)
    assert item["content"] == event.data["content"]
    assert acme.key_id in Envelope.model_validate(item["content"]).recipients
    assert "identity" not in item and event.data["identity"]["ciphertext"] not in str(item)
    assert "reply_key" not in item and "outbox" not in item, "a record announces nothing"


async def test_a_buyer_linked_after_the_report_was_sealed_gets_nothing(
    setting: NotifyStore,
) -> None:
    await registry.add_factory(setting.registry, "F-300", "Late Link Garments", "BD")
    operator = Party.new()
    early = await setting.buyer("early-brand", "F-300")
    event = report_event("F-300", {"operator": operator, "early": early})
    await setting.buyer("late-brand", "F-300")  # after sealing: not among the recipients

    await add_to_digests(setting.issuer, event)

    buyers = [doc["buyer"] async for doc in setting.items.find({"case_id": event.subject})]
    assert buyers == ["early-brand"], "an item the buyer could not open is not issued"


async def test_a_redelivered_event_changes_nothing(setting: NotifyStore) -> None:
    await registry.add_factory(setting.registry, "F-400", "Twice Told", "KH")
    operator = Party.new()
    one = await setting.buyer("brand-one", "F-400")
    two = await setting.buyer("brand-two", "F-400")
    event = report_event("F-400", {"operator": operator, "one": one, "two": two}, urgent=True)

    await add_to_digests(setting.issuer, event)
    first = {doc["_id"]: doc async for doc in setting.items.find({})}
    await add_to_digests(setting.issuer, event)
    await add_to_digests(setting.issuer, parse_event(event.to_bytes()))
    after = {doc["_id"]: doc async for doc in setting.items.find({})}

    assert sorted(first) == [f"brand-one:{event.subject}", f"brand-two:{event.subject}"]
    assert after == first, "no second record, no other number"


async def test_a_factory_without_linked_buyers_gets_no_item(setting: NotifyStore) -> None:
    await registry.add_factory(setting.registry, "F-500", "Unsold", "CN")
    event = report_event("F-500", {"operator": Party.new()})
    await add_to_digests(setting.issuer, event)
    assert await setting.items.count_documents({}) == 0
