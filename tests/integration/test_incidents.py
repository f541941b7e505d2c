"""Incident grouping and escalation (issue 18) against the running services: reports of one
category at one factory within one window become one incident whose members are each
linked once, while reports of another factory or category stay out; the incident id that is
published is random, not the key anyone could derive from factory, category and window;
linking holds under redelivery and concurrent consumers; a critical case's escalation
reaches Kafka within seconds of its submission.

Reports are real (`hotline submit`) and grouped by the running triage; the events are read
back from Kafka. The redelivery and concurrency checks call `incidents.link_incidents` in
this process, on the same store as the running triage (whose relay publishes what they
write), as a second consumer of the same events would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventError, EventType, parse_event, topic_for
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Databases, Store
from hotline.triage.collections import COLLECTIONS
from hotline.triage.incidents import THRESHOLD, incident_id, link_incidents, window_of
from tests.support.cli import hotline_json
from tests.support.registry import AdminApi, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import wait_for

Document = dict[str, Any]
WAIT = 60.0
LINKED = topic_for(EventType.INCIDENT_LINKED)
ESCALATED = topic_for(EventType.CASE_ESCALATED)
CATEGORY = "association"  # a strike: high, not critical (no escalation of its own)
ESCALATION_WITHIN = 10.0  # seconds from the accepted submission to the event on Kafka


@dataclass
class World:
    settings: Settings
    mongo: Databases[Collection[Document]]
    factory: str
    other_factory: str


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    admin.operator_key_file(tmp_path_factory.mktemp("keys"))
    factory, other_factory = unique_factory_code(), unique_factory_code()
    for code in (factory, other_factory):
        admin.created("factories", {"code": code, "name": "Plover Textiles", "country": "KH"})
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(settings, Databases(client, settings.mongo_db), factory, other_factory)


def submit(world: World, factory: str, category: str) -> str:
    submitted = hotline_json("submit", "--factory", factory, "--category", category, "--text", "x")
    case_id: str = submitted["case_id"]
    return case_id


def stored(world: World, case_id: str) -> Document:
    found = wait_for(
        lambda: world.mongo.triage_cases.find_one({"_id": case_id}),
        timeout=WAIT,
        what="the case at triage",
    )
    return dict(found)


async def events_on(settings: Settings, topic: str) -> list[Event]:
    found = []
    for raw in await records_on(settings, topic):
        try:
            found.append(parse_event(raw))
        except EventError:
            continue
    return found


def links(world: World, incident: str) -> Counter[str]:
    """How many `incident.linked` records of `incident` (its published id) each case has on
    Kafka."""
    events = asyncio.run(events_on(world.settings, LINKED))
    return Counter(event.subject for event in events if event.data["incident"] == incident)


def links_once_there_are(world: World, incident: str, count: int) -> Counter[str]:
    """The incident's links on Kafka once `count` cases have one."""

    def found() -> Counter[str] | None:
        linked = links(world, incident)
        return linked if len(linked) >= count else None

    return wait_for(found, timeout=WAIT, what=f"{count} cases linked to the incident")


def incident_document(world: World, key: str) -> Document:
    """The incident document of internal key `key`, once triage has made it."""
    found = wait_for(
        lambda: world.mongo.triage_incidents.find_one({"_id": key}),
        timeout=WAIT,
        what="the incident document",
    )
    return dict(found)


def published_id(world: World, key: str) -> str:
    """The id the incident of internal key `key` is published under."""
    public_id: str = incident_document(world, key)["public_id"]
    return public_id


@pytest.fixture(scope="module")
def incident(world: World) -> tuple[str, list[str], list[str]]:
    """Three reports of one category at one factory (an incident), and two that are not of
    it (another factory; another category): (the incident's internal key, members, the
    others)."""
    members = [submit(world, world.factory, CATEGORY) for _ in range(THRESHOLD)]
    others = [submit(world, world.other_factory, CATEGORY), submit(world, world.factory, "hours")]
    hours = {stored(world, case_id)["received"] for case_id in members + others}
    windows = {window_of(hour) for hour in hours}
    if len(windows) > 1:
        pytest.skip("the reports straddle the end of an incident window (a rare boundary)")
    [(start, _)] = windows
    return incident_id(world.factory, CATEGORY, start), members, others


def test_reports_of_one_category_at_one_factory_are_linked_once_each(
    world: World, incident: tuple[str, list[str], list[str]]
) -> None:
    incident_key, members, others = incident
    public_id = published_id(world, incident_key)
    linked = links_once_there_are(world, public_id, THRESHOLD)
    assert linked == Counter(dict.fromkeys(members, 1)), "every member exactly once"

    document = incident_document(world, incident_key)
    assert set(document["founders"]) == set(members)
    assert (document["factory"], document["category"]) == (world.factory, CATEGORY)
    assert not {"identity", "content", "envelope"} & set(document), "no identity, no content"
    for case_id in members:  # linked, not merged: each case keeps its own document
        case = stored(world, case_id)
        assert case["incidents"] == {public_id: CATEGORY}
        assert case["content"]["ciphertext"]
    for case_id in others:
        assert not stored(world, case_id).get("incidents"), "another factory or category"
    every = asyncio.run(events_on(world.settings, LINKED))
    assert not {event.subject for event in every} & set(others)


def test_the_published_incident_id_cannot_be_derived_from_public_data(
    world: World, incident: tuple[str, list[str], list[str]]
) -> None:
    """Factory codes and categories are public: the key derived from them (and the window)
    stays inside triage; what the log and the case show is random."""
    incident_key, members, _ = incident
    public_id = published_id(world, incident_key)
    assert public_id != incident_key
    assert uuid.UUID(public_id).version == 4, "random, not derived"
    linked = links_once_there_are(world, public_id, THRESHOLD)
    assert not links(world, incident_key), "the derivable key is never published"
    for case_id in linked:
        assert incident_key not in stored(world, case_id)["incidents"]
    # The operator sees the link under the published id too.
    operator = password_token(world.settings, "operator", "operator")
    shown = httpx.get(
        f"{world.settings.triage_url}/api/cases/{members[0]}",
        headers={"Authorization": f"Bearer {operator}"},
        timeout=60,
        verify=tls(),
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["incidents"] == {public_id: CATEGORY}


def test_a_newcomer_is_linked_once_and_redelivery_links_nothing_again(
    world: World, incident: tuple[str, list[str], list[str]]
) -> None:
    incident_key, members, _ = incident
    public_id = published_id(world, incident_key)
    links_once_there_are(world, public_id, THRESHOLD)
    newcomer = submit(world, world.factory, CATEGORY)
    hour = stored(world, newcomer)["received"]
    if window_of(hour)[0] != incident_document(world, incident_key)["window_start"]:
        pytest.skip("the newcomer came after the window's end")
    linked = links_once_there_are(world, public_id, THRESHOLD + 1)
    assert linked == Counter(dict.fromkeys([*members, newcomer], 1))

    # Every member's report delivered again, twice, concurrently: nothing new.
    version = incident_document(world, incident_key)["version"]
    cases = [stored(world, case_id) for case_id in [*members, newcomer]]
    asyncio.run(_link_concurrently(world.settings, cases, copies=2))
    assert incident_document(world, incident_key)["version"] == version
    assert links(world, public_id) == linked


def test_concurrent_consumers_link_each_member_exactly_once(world: World) -> None:
    """Reports of a new incident handled by two consumers at once (each report twice):
    the guarded writes link each case once, all under the one published id that the
    consumer whose insert created the document drew."""
    factory = f"race-{uuid.uuid4().hex[:8]}"  # an incident of its own, no report in it
    hour = stored(world, submit(world, world.factory, "hours"))["received"]
    cases = [
        {"_id": str(uuid.uuid4()), "factory": factory, "categories": [CATEGORY], "received": hour}
        for _ in range(THRESHOLD + 2)
    ]
    # Stored first, as the consumer stores cases before it links them; removed afterwards
    # (they are no one's cases).
    world.mongo.triage_cases.insert_many(
        [{**case, "version": 1, "outbox": {}, "outbox_pending": 0} for case in cases]
    )
    ids = [case["_id"] for case in cases]
    key = incident_id(factory, CATEGORY, window_of(hour)[0])
    try:
        asyncio.run(_link_concurrently(world.settings, cases, copies=2))
        public_id = published_id(world, key)
        # Every event either consumer wrote is on Kafka once nothing is pending: the cases'
        # own (the later members') and the incident's (the founders').
        wait_for(
            lambda: (
                world.mongo.triage_cases.count_documents(
                    {"_id": {"$in": ids}, "outbox_pending": {"$gt": 0}}
                )
                + world.mongo.triage_incidents.count_documents(
                    {"_id": key, "outbox_pending": {"$gt": 0}}
                )
                == 0
            ),
            timeout=WAIT,
            what="the linking consumers' events published",
        )
    finally:
        world.mongo.triage_cases.delete_many({"_id": {"$in": ids}})
    linked = links(world, public_id)
    assert linked == Counter(dict.fromkeys(ids, 1))
    every = asyncio.run(events_on(world.settings, LINKED))
    published = {event.data["incident"] for event in every if event.subject in linked}
    assert published == {public_id}, "every consumer published the one id"


async def _link_concurrently(settings: Settings, cases: list[Document], copies: int) -> None:
    """`link_incidents` for every case, `copies` times each, all at once, on `copies` store
    connections (the running triage's relay publishes what they write)."""
    runtimes = []
    for _ in range(copies):
        store = Store(settings, COLLECTIONS)
        producer = make_producer(settings)
        runtimes.append(Runtime(settings, store, producer, relay_for(store, producer)))
    try:
        await asyncio.gather(
            *(
                link_incidents(
                    runtime, case["_id"], case["factory"], case["categories"], case["received"]
                )
                for runtime in runtimes
                for case in cases
            )
        )
    finally:
        for runtime in runtimes:
            await runtime.store.close()


# --- escalation ------------------------------------------------------------------------------


def test_a_critical_case_is_escalated_on_kafka_within_seconds(world: World) -> None:
    case_id = submit(world, world.factory, "safety")
    accepted = time.monotonic()

    def escalated() -> Event | None:
        events = asyncio.run(events_on(world.settings, ESCALATED))
        return next((event for event in events if event.subject == case_id), None)

    event = wait_for(escalated, timeout=WAIT, what="the escalation on Kafka")
    took = time.monotonic() - accepted
    print(f"\nescalation on Kafka {took * 1000:.0f} ms after the submission was accepted")
    assert event.data["severity"] == "critical"
    assert took < ESCALATION_WITHIN, f"the escalation took {took:.1f} s"
