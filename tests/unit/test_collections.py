"""Each service's collections, declared once in its own folder (services/<name>/collections.py)."""

from __future__ import annotations

import pytest
from pymongo import IndexModel

from hotline.audit_log import storage as audit_storage
from hotline.intake.collections import COLLECTIONS as INTAKE
from hotline.notify.collections import COLLECTIONS as NOTIFY
from hotline.shared.outbox import PENDING_INDEX, outbox_collection
from hotline.shared.store import Collection, Collections, database_of
from hotline.triage.collections import COLLECTIONS as TRIAGE

SERVICES = (INTAKE, TRIAGE, NOTIFY)


def _keys(index: IndexModel) -> list[tuple[str, int]]:
    return list(index.document["key"].items())


def test_no_two_services_relay_the_same_outbox_collection() -> None:
    relayed = [name for service in SERVICES for name in service.outbox_names()]
    assert len(relayed) == len(set(relayed)), relayed


def test_each_service_relays_what_it_writes_and_no_disclosure() -> None:
    assert INTAKE.outbox_names() == ["intake_cases", "intake_messages"]
    assert set(TRIAGE.outbox_names()) == {
        "triage_cases",
        "triage_messages",
        "factories",
        "buyers",
        "links",
        "operator_keys",
        "triage_incidents",
        "retention_policies",
    }
    assert NOTIFY.outbox_names() == ["notify_digests", "notify_questions"]
    for service in SERVICES:  # published before they are recorded (shared/disclosure.py)
        assert f"{service.service}_disclosures" in {c.name for c in service.declared}


def test_every_outbox_collection_carries_the_pending_index() -> None:
    for service in SERVICES:
        for collection in service.declared:
            pending = [i for i in collection.indexes if _keys(i) == _keys(PENDING_INDEX)]
            assert bool(pending) == collection.outbox, (service.service, collection.name)


def test_a_collection_is_declared_once_per_service() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Collections("x", outbox_collection("cases"), Collection("cases"))


def test_audit_entries_are_unique_by_event_id_in_the_audit_logs_own_indexes() -> None:
    entries = audit_storage.INDEXES[audit_storage.ENTRIES]
    assert any(_keys(i) == [("event_id", 1)] and i.document.get("unique") for i in entries)
    assert all("audit_entries" not in s.outbox_names() for s in SERVICES)
    assert all(c.name != "audit_entries" for s in SERVICES for c in s.declared)


# Triage's registry, which every service reads: the one set of collections in the base database.
REGISTRY = {
    "factories",
    "buyers",
    "links",
    "operator_keys",
    "registry_version",
    "retention_policies",
}


def test_each_services_collections_are_in_its_own_database_and_the_registry_in_the_shared_one() -> (
    None
):
    for service in SERVICES:
        for collection in service.declared:
            own = f"hotline_{service.service}"
            expected = "hotline" if collection.name in REGISTRY else own
            assert database_of("hotline", collection.name) == expected, collection.name
    assert {c.name for c in TRIAGE.declared} >= REGISTRY
    for name in [*audit_storage.INDEXES, audit_storage.TILES]:
        assert database_of("hotline", name) == "hotline_audit", name
    assert database_of("bench_1a2b", "notify_items") == "bench_1a2b_notify"
    assert database_of("hotline", "applied_events") == "hotline"
    assert database_of("hotline", "notifyx_items") == "hotline"  # a prefix is a whole word
