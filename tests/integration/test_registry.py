"""The registry against the real store (a database of its own per test), and the admin API
answering each of its refusals with its status and leaving the registry unchanged.

Validation without a store is tested in tests/unit/test_registry.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hotline.cli.engines.local import LocalSystem
from hotline.shared import registry
from hotline.shared.config import Settings
from hotline.shared.store import Store
from hotline.triage.collections import COLLECTIONS
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code


@pytest.fixture
async def store(test_settings: Settings, local_system: Any) -> AsyncIterator[Store]:
    settings = test_settings.model_copy(update={"mongo_db": f"registry_{uuid.uuid4().hex[:12]}"})
    s = Store(settings, COLLECTIONS)
    await s.ensure_indexes()
    try:
        yield s
    finally:
        await s.drop_databases()
        await s.close()


def event_types(document: dict[str, Any]) -> list[str]:
    return [event["type"] for event in document["outbox"].values()]


async def test_a_factory_is_registered_once(store: Store) -> None:
    added = await registry.add_factory(store, "F-001", "  Sunrise Toys ", "CN")
    assert event_types(added) == ["registry.changed"]
    with pytest.raises(registry.AlreadyExists, match="factory F-001 already exists"):
        await registry.add_factory(store, "F-001", "Someone Else", "BD")
    assert [doc async for doc in store.db.factories.find({}, {"name": 1, "country": 1})] == [
        {"_id": "F-001", "name": "Sunrise Toys", "country": "CN"}
    ]


async def test_invalid_input_stores_nothing(store: Store) -> None:
    with pytest.raises(registry.InvalidInput):
        await registry.add_factory(store, "f-001", "Sunrise Toys", "CN")
    with pytest.raises(registry.InvalidInput, match="public key"):
        await registry.add_buyer(store, "acme", "Acme", "A" * 43 + "=")
    with pytest.raises(registry.InvalidInput, match="public key"):
        await registry.add_operator_key(store, "not base64!")
    for name in ("factories", "buyers", "operator_keys"):
        assert await store.db[name].count_documents({}) == 0, name


async def test_a_buyer_and_its_key_are_registered_once(store: Store) -> None:
    key, other = Party.new(), Party.new()
    added = await registry.add_buyer(store, "acme", "Acme", key.public_b64)
    assert added["key_id"] == key.key_id, "the key id is derived, never chosen"
    assert event_types(added) == ["registry.changed", "key.registered"]
    [registered] = [e for e in added["outbox"].values() if e["type"] == "key.registered"]
    assert registered["data"] == {
        "key_id": key.key_id,
        "public_key": key.public_b64,
        "org": "acme",
        "org_kind": "buyer",
    }
    with pytest.raises(registry.AlreadyExists):
        await registry.add_buyer(store, "acme", "Acme Again", other.public_b64)
    with pytest.raises(registry.AlreadyExists):
        await registry.add_buyer(store, "acme-clone", "Clone", key.public_b64)  # same key
    assert [doc["_id"] async for doc in store.db.buyers.find({})] == ["acme"]


async def test_an_operator_key_is_registered_once(store: Store) -> None:
    key = Party.new()
    added = await registry.add_operator_key(store, key.public_b64)
    assert added["_id"] == key.key_id
    [registered] = added["outbox"].values()
    assert registered["data"]["org"] == registry.OPERATOR_ORG
    assert registered["data"]["org_kind"] == "operator"
    with pytest.raises(registry.AlreadyExists, match=key.key_id):
        await registry.add_operator_key(store, f" {key.public_b64}\n")
    assert await store.db.operator_keys.count_documents({}) == 1


async def test_a_link_needs_both_ends_and_is_made_once(store: Store) -> None:
    await registry.add_factory(store, "F-001", "Sunrise Toys", "CN")
    with pytest.raises(registry.UnknownBuyer, match="no buyer acme"):
        await registry.link(store, "acme", "F-001")
    await registry.add_buyer(store, "acme", "Acme", Party.new().public_b64)
    with pytest.raises(registry.UnknownFactory, match="no factory F-404"):
        await registry.link(store, "acme", "F-404")
    linked = await registry.link(store, "acme", "F-001")
    assert (linked["buyer"], linked["factory"]) == ("acme", "F-001")
    with pytest.raises(registry.AlreadyExists):
        await registry.link(store, "acme", "F-001")
    assert await store.db.links.count_documents({}) == 1


async def test_recipients_content_to_operators_and_linked_buyers_identity_to_operators(
    store: Store,
) -> None:
    with pytest.raises(registry.UnknownFactory):
        await registry.recipients_for(store, "F-001")
    await registry.add_factory(store, "F-001", "Sunrise Toys", "CN")
    await registry.add_factory(store, "F-002", "Delta Garments", "BD")
    with pytest.raises(registry.NoOperatorKey):
        await registry.recipients_for(store, "F-001")
    operators = [Party.new(), Party.new()]
    for operator in operators:
        await registry.add_operator_key(store, operator.public_b64)
    acme, other = Party.new(), Party.new()
    await registry.add_buyer(store, "acme", "Acme", acme.public_b64)
    await registry.add_buyer(store, "other", "Other", other.public_b64)
    await registry.link(store, "acme", "F-001")
    await registry.link(store, "other", "F-002")

    found = await registry.recipients_for(store, "F-001")
    by_operator = {o.key_id: o.public for o in operators}
    assert found.identity == by_operator
    assert found.content == by_operator | {acme.key_id: acme.public}
    assert [b["_id"] for b in await registry.buyers_of(store, "F-001")] == ["acme"]
    assert await registry.buyers_of(store, "F-404") == []


async def test_the_reader_keeps_the_recipients_and_sees_every_write_at_the_next_read(
    store: Store,
) -> None:
    """Intake reads recipients through `RegistryReader` (one read per report while nothing
    changes); a report after a registry write must be checked against the registry as
    written, whichever write it was."""
    reader = registry.RegistryReader(store)
    await registry.add_factory(store, "F-001", "Sunrise Toys", "CN")
    with pytest.raises(registry.NoOperatorKey):  # refusals are never kept
        await reader.recipients_for("F-001")
    operator = Party.new()
    await registry.add_operator_key(store, operator.public_b64)
    first = await reader.recipients_for("F-001")
    assert set(first.content) == {operator.key_id}
    assert await reader.recipients_for("F-001") is first, "kept while nothing is written"

    acme = Party.new()
    await registry.add_buyer(store, "acme", "Acme", acme.public_b64)
    await registry.link(store, "acme", "F-001")
    assert set((await reader.recipients_for("F-001")).content) == {operator.key_id, acme.key_id}

    rotated = Party.new()
    await registry.rotate_buyer_key(store, "acme", rotated.public_b64)
    after = await reader.recipients_for("F-001")
    assert set(after.content) == {operator.key_id, rotated.key_id}, "the revoked key is gone"
    with pytest.raises(registry.UnknownFactory):
        await reader.recipients_for("F-404")
    await registry.add_factory(store, "F-404", "Late Toys", "VN")
    assert set((await reader.recipients_for("F-404")).content) == {operator.key_id}


# --- through the admin API ------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(system: LocalSystem) -> AdminApi:
    return AdminApi(system.settings)


def test_the_admin_api_answers_with_what_is_stored(admin: AdminApi) -> None:
    code, buyer_id, key, operator = (
        unique_factory_code(),
        unique_buyer_id(),
        Party.new(),
        Party.new(),
    )
    factory = {"code": code, "name": " Admin Toys ", "country": "VN", "city": " Bac Ninh "}
    stored = factory | {"name": "Admin Toys", "city": "Bac Ninh"}
    assert admin.created("factories", factory) == stored
    assert stored in admin.get("factories").json()
    buyer = {"buyer_id": buyer_id, "name": "Admin Brand", "public_key": key.public_b64}
    assert admin.created("buyers", buyer) == {
        "buyer_id": buyer_id,
        "name": "Admin Brand",
        "key_id": key.key_id,
    }
    link = {"buyer_id": buyer_id, "factory": code}
    assert admin.created("links", link) == link
    assert admin.created("operator-keys", {"public_key": operator.public_b64}) == {
        "key_id": operator.key_id
    }


def test_each_refusal_of_the_registry_has_its_status_and_changes_nothing(
    admin: AdminApi,
) -> None:
    code, buyer_id = unique_factory_code(), unique_buyer_id()
    admin.created("factories", {"code": code, "name": "Refusals Toys", "country": "VN"})
    admin.created(
        "buyers", {"buyer_id": buyer_id, "name": "Refusals", "public_key": Party.new().public_b64}
    )
    refusals: list[tuple[str, dict[str, Any], int, str]] = [
        ("factories", {"code": "f-1", "name": "x", "country": "VN"}, 422, "invalid factory code"),
        ("factories", {"code": code, "name": "Again", "country": "VN"}, 409, "already exists"),
        ("factories", {"code": code, "name": "x"}, 422, "Field required"),
        ("buyers", {"buyer_id": "b-x", "name": "x", "public_key": "AAAA"}, 422, "public key: "),
        ("links", {"buyer_id": "nobody-here", "factory": code}, 404, "no buyer nobody-here"),
        ("links", {"buyer_id": buyer_id, "factory": "F-NOWHERE"}, 404, "no factory F-NOWHERE"),
        ("operator-keys", {"public_key": "A" * 43 + "="}, 422, "public key: "),
    ]
    before = admin.get("factories").json()
    for resource, body, status, explanation in refusals:
        response = admin.post(resource, body)
        assert response.status_code == status, (resource, body, response.text)
        assert explanation in str(response.json()["detail"]), (resource, body, response.text)
    assert admin.get("factories").json() == before
    linked = admin.post("links", {"buyer_id": buyer_id, "factory": code})
    assert linked.status_code == 201
    again = admin.post("links", {"buyer_id": buyer_id, "factory": code})
    assert again.status_code == 409
    assert again.json() == {"detail": f"{buyer_id} is already linked to {code}"}
