"""A poll's reports applied together (issue 20, consumer throughput), on the real store and,
for the runner, the real Kafka: the same effects as one event at a time, exactly once under
redelivery, and a poison event in a batch dead-lettered while the others are applied.

- notify: each buyer's records of a batch are numbered as one run after what it had, without
  gap, each report once, however often the batch (or a part of it) is delivered again; a
  poll's case events leave the same records and state as the same events one at a time, and
  a critical case's urgent digest once;
- triage: a batch of reports at one factory and category makes one incident whose members
  are each linked once (one `incident.linked` per case, every case marked); later reports
  join it without rewriting it; a redelivered batch changes nothing;
- the runner: with a `Batch`, a batch that fails is applied again one event at a time, so
  only the poison event goes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from hotline.cli.engines.process import ManagedProcess
from hotline.notify.consumer import add_all_to_digests, add_to_digests, apply_case_event, apply_poll
from hotline.notify.webhooks import enqueue
from hotline.shared import registry
from hotline.shared.bus import Batch, make_producer, publish
from hotline.shared.config import Settings
from hotline.shared.events import (
    DEAD_LETTER_TOPIC,
    CaseStatusChanged,
    Event,
    EventType,
    new_event,
)
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Store
from hotline.triage import consumer
from hotline.triage.collections import COLLECTIONS as TRIAGE_COLLECTIONS
from hotline.triage.consumer import triage_reports
from hotline.triage.incidents import THRESHOLD
from tests.integration.test_bus import find_record, holding
from tests.support.digests import (
    NotifyStore,
    escalated_event,
    notify_store,
    report_event,
    status_event,
    triaged_event,
)
from tests.support.registry import Party
from tests.support.waiting import async_wait_for

TOPIC = "hotline.case.status-changed"


# --- notify ------------------------------------------------------------------------------------


@pytest.fixture
async def setting(test_settings: Settings, local_system: Any) -> AsyncIterator[NotifyStore]:
    async with notify_store(test_settings) as setting:
        yield setting


async def _numbers(setting: NotifyStore, buyer: str) -> dict[str, int]:
    """Case id -> the number of the buyer's "new" record of it."""
    found = setting.items.find({"buyer": buyer, "change": "new"}, {"case_id": 1, "n": 1})
    return {doc["case_id"]: doc["n"] async for doc in found}


async def test_a_batch_of_reports_is_numbered_after_what_the_buyer_had_without_gap(
    setting: NotifyStore,
) -> None:
    await registry.add_factory(setting.registry, "F-610", "Batch Garments", "BD")
    await registry.add_factory(setting.registry, "F-620", "Other Batch", "BD")
    operator = Party.new()
    acme = await setting.buyer("acme", "F-610", "F-620")
    solo = await setting.buyer("solo", "F-620")
    sealed = {"operator": operator, "acme": acme}
    early = report_event("F-610", sealed)
    await add_to_digests(setting.issuer, early)  # one record before the batch
    batch = [
        report_event("F-610", sealed),
        report_event("F-620", {**sealed, "solo": solo}),
        report_event("F-610", sealed),
    ]

    await add_all_to_digests(setting.issuer, batch)

    expected = {e.subject: n for n, e in enumerate([early, *batch], start=1)}
    assert await _numbers(setting, "acme") == expected, "in order, after what it had"
    assert await _numbers(setting, "solo") == {batch[1].subject: 1}, "only its own factory's"


async def test_a_redelivered_batch_records_nothing_twice(setting: NotifyStore) -> None:
    await registry.add_factory(setting.registry, "F-630", "Again Textiles", "KH")
    operator = Party.new()
    brand = await setting.buyer("brand", "F-630")
    sealed = {"operator": operator, "brand": brand}
    first = [report_event("F-630", sealed) for _ in range(3)]
    await add_all_to_digests(setting.issuer, first)
    recorded = {doc["_id"]: doc async for doc in setting.items.find({})}
    late = report_event("F-630", sealed)

    # The poll read again after a crash, and the next poll overlapping it, beside a new one.
    await add_all_to_digests(setting.issuer, first)
    await add_all_to_digests(setting.issuer, [first[2], late, first[0]])

    after = {doc["_id"]: doc async for doc in setting.items.find({})}
    assert {k: after[k] for k in recorded} == recorded, "no record changed"
    assert await _numbers(setting, "brand") == {
        **{e.subject: n for n, e in enumerate(first, start=1)},
        late.subject: 4,
    }, "the new report after them, and nothing else"


def _case_history(report: Event) -> list[Event]:
    """What triage and the operator send of one case: triaged, worked, escalated, triaged
    again as it was (a digest shows no change of that one), moved on."""
    return [
        triaged_event(report, "normal"),
        status_event(report, "acknowledged"),
        escalated_event(report),
        triaged_event(report, "critical"),
        status_event(report, "investigating"),
    ]


async def _what_the_buyer_was_told(setting: NotifyStore, case_id: str) -> dict[str, Any]:
    """The buyer's records of the case (the change each is, in number order), the case's
    state and how many digests were issued (one by one, the escalation's urgent digest goes
    out before the last change, which makes a second)."""
    records = setting.items.find({"case_id": case_id}, {"change": 1, "n": 1}).sort("n", 1)
    state = await setting.issuer.case_state(case_id) or {}
    return {
        "records": [doc["change"] async for doc in records],
        "state": {key: state.get(key) for key in ("severity", "due", "status", "escalated")},
        "digests": await setting.digests.count_documents({}),
    }


async def test_a_polls_case_events_leave_what_the_same_events_one_at_a_time_leave(
    test_settings: Settings, local_system: Any
) -> None:
    told = []
    for together in (False, True):
        async with notify_store(test_settings) as setting:
            await registry.add_factory(setting.registry, "F-640", "Poll Knitwear", "VN")
            operator = Party.new()
            brand = await setting.buyer("brand", "F-640")
            report = report_event("F-640", {"operator": operator, "brand": brand})
            await add_to_digests(setting.issuer, report)
            history = _case_history(report)
            if together:
                await apply_poll(setting.issuer, history)
            else:
                for event in history:
                    await apply_case_event(setting.issuer, event)
            told.append(await _what_the_buyer_was_told(setting, report.subject))
    one_by_one, polled = told
    assert polled["records"] == one_by_one["records"] and polled["state"] == one_by_one["state"]
    assert one_by_one["digests"] == 2
    assert polled["records"] == ["new", "changed", "changed", "changed", "changed"]
    assert polled["state"] == {
        "severity": "critical",
        "due": "2026-03-04T14:00:00Z",
        "status": "investigating",
        "escalated": True,
    }
    assert polled["digests"] == 1, "one urgent digest: everything pending of the poll in it"


async def test_a_redelivered_poll_of_case_events_records_and_issues_nothing_twice(
    setting: NotifyStore,
) -> None:
    await registry.add_factory(setting.registry, "F-650", "Twice Apparel", "LK")
    operator = Party.new()
    brand = await setting.buyer("brand", "F-650")
    reports = [report_event("F-650", {"operator": operator, "brand": brand}) for _ in range(2)]
    history = [event for report in reports for event in _case_history(report)]
    await apply_poll(setting.issuer, reports)
    await apply_poll(setting.issuer, history)
    recorded = {doc["_id"]: doc async for doc in setting.items.find({})}
    digests = await setting.digests.count_documents({})

    await apply_poll(setting.issuer, history)  # read again after a crash before the commit
    await apply_poll(setting.issuer, [*reports, *history[3:]])

    assert {doc["_id"]: doc async for doc in setting.items.find({})} == recorded
    assert await setting.digests.count_documents({}) == digests >= 1


async def test_a_poll_that_makes_several_of_a_buyers_cases_critical_sends_it_one_alert(
    setting: NotifyStore,
) -> None:
    """A burst of urgent reports: each buyer gets one urgent digest holding all its critical
    cases of the poll (one alert to act on), not one per case."""
    await registry.add_factory(setting.registry, "F-660", "Burst Toys", "CN")
    await registry.add_factory(setting.registry, "F-670", "Calm Toys", "CN")
    operator = Party.new()
    acme = await setting.buyer("acme", "F-660", "F-670")
    solo = await setting.buyer("solo", "F-670")
    burst = [report_event("F-660", {"operator": operator, "acme": acme}) for _ in range(3)]
    calm = report_event("F-670", {"operator": operator, "acme": acme, "solo": solo})
    elsewhere = report_event("F-670", {"operator": operator, "acme": acme, "solo": solo})
    await apply_poll(setting.issuer, [*burst, calm, elsewhere])

    await apply_poll(
        setting.issuer,
        [
            *(escalated_event(report) for report in burst),
            escalated_event(elsewhere),
            triaged_event(calm, "normal"),
        ],
    )

    urgent = [doc async for doc in setting.digests.find({"reason": "urgent"})]
    cases_of = {doc["buyer"]: set(doc["cases"]) for doc in urgent}
    assert len(urgent) == 2 and set(cases_of) == {"acme", "solo"}, "one urgent digest each"
    assert cases_of["acme"] >= {report.subject for report in [*burst, elsewhere]}
    assert elsewhere.subject in cases_of["solo"]


async def test_case_states_written_against_a_stale_read_of_the_poll_are_set_all_the_same(
    setting: NotifyStore,
) -> None:
    """A poll's states are written in one go against what it read; another writer in between
    (a case updated, a case created) loses neither its write nor the poll's."""
    issuer, other = setting.issuer, setting.another_process()
    for case_id in ("c-1", "c-2"):
        await issuer.set_case_state(case_id, {"severity": "normal"})
    read = await issuer.case_states(["c-1", "c-2", "c-3"])
    await other.set_case_state("c-1", {"status": "acknowledged"})  # after the poll's read
    await other.set_case_state("c-3", {"status": "investigating"})  # created meanwhile

    wanted = {"c-1": "critical", "c-2": "high", "c-3": "critical"}
    await issuer.set_case_states({c: {"severity": s} for c, s in wanted.items()}, read)

    after = await issuer.case_states(list(wanted))
    assert {c: (doc["severity"], doc.get("status")) for c, doc in after.items()} == {
        "c-1": ("critical", "acknowledged"),
        "c-2": ("high", None),
        "c-3": ("critical", "investigating"),
    }


async def test_a_digests_messages_are_queued_once_per_endpoint_however_often_it_is_delivered(
    setting: NotifyStore,
) -> None:
    """The webhook consumer queues a digest's alerts and the digest itself in one go: each
    message once per endpoint, nothing again when the `digest.issued` event comes again, and
    not a message another digest made already."""
    endpoints = setting.issuer.store.db.notify_webhooks
    await endpoints.insert_many([{"_id": f"ep-{n}", "buyer": "acme"} for n in (1, 2)])
    runtime = cast(Runtime, SimpleNamespace(store=setting.issuer.store))
    first = [("alert:c1", '{"a":1}'), ("alert:c2", '{"a":2}'), ("digest:acme:1", "{}")]

    assert len(await enqueue(runtime, "acme", first, "acme:1")) == 6, "3 messages x 2 endpoints"
    assert await enqueue(runtime, "acme", first, "acme:1") == [], "delivered again: nothing"
    later = [("alert:c2", '{"a":2}'), ("alert:c3", '{"a":3}'), ("digest:acme:2", "{}")]
    assert len(await enqueue(runtime, "acme", later, "acme:2")) == 4, "not c2: digest 1 made it"
    assert await enqueue(runtime, "nobody", later, "nobody:1") == [], "no endpoint: nothing"

    deliveries = setting.issuer.store.db.notify_deliveries
    queued = Counter([doc["message_id"] async for doc in deliveries.find({})])
    assert queued == {
        m: 2 for m in ["alert:c1", "alert:c2", "alert:c3", "digest:acme:1", "digest:acme:2"]
    }
    messages = setting.issuer.store.db.notify_webhook_messages
    assert await messages.find_one({"_id": "acme:alert:c2"}, {"_id": 0, "source": 1}) == {
        "source": "acme:1"
    }


# --- triage ------------------------------------------------------------------------------------


@pytest.fixture
async def triage(test_settings: Settings, local_system: Any) -> AsyncIterator[Runtime]:
    """Triage's consumer runtime on a database of its own (its relay is not started: what
    the handler writes stays in the outboxes, where the test reads it)."""
    settings = test_settings.model_copy(update={"mongo_db": f"triage_{uuid.uuid4().hex[:12]}"})
    store = Store(settings, TRIAGE_COLLECTIONS)
    await store.ensure_indexes()
    producer = make_producer(settings)
    try:
        yield Runtime(settings, store, producer, relay_for(store, producer))
    finally:
        await store.drop_databases()
        await store.close()


def _reports(count: int, factory: str, category: str) -> list[Event]:
    operator = Party.new()
    return [
        report_event(factory, {"operator": operator}, categories=[category]) for _ in range(count)
    ]


async def _incident_state(runtime: Runtime) -> tuple[dict[str, Any], Counter[str]]:
    """The one incident document, and per case the `incident.linked` events written (in the
    incident's outbox, the founders', and in the cases' own, the later members')."""
    [incident] = [doc async for doc in runtime.store.db.triage_incidents.find({})]
    entries = list(incident["outbox"].values())
    async for case in runtime.store.db.triage_cases.find({}):
        entries.extend(case["outbox"].values())
    linked = Counter(e["subject"] for e in entries if e["type"] == EventType.INCIDENT_LINKED)
    return incident, linked


async def test_a_batch_of_reports_links_each_member_of_its_incident_once(
    triage: Runtime,
) -> None:
    reports = _reports(THRESHOLD + 2, "F-640", "safety")
    below = reports[: THRESHOLD - 1]
    await triage_reports(triage, below)  # founders, not an incident yet
    await triage_reports(triage, reports[THRESHOLD - 1 :])  # crosses the threshold

    incident, linked = await _incident_state(triage)
    cases = {doc["_id"]: doc async for doc in triage.store.db.triage_cases.find({})}
    assert set(cases) == {e.subject for e in reports}, "every case stored"
    assert linked == Counter({e.subject: 1 for e in reports}), "each member linked once"
    assert set(incident["founders"]) == {e.subject for e in reports[:THRESHOLD]}
    for case in cases.values():
        assert case["incidents"] == {incident["public_id"]: "safety"}, "every case marked"
    # The report whose arrival made it an incident.
    assert incident["linked_at"] == reports[THRESHOLD - 1].time


async def test_reports_joining_an_incident_are_linked_without_rewriting_it(
    triage: Runtime,
) -> None:
    """The incident document stays the size of its founders however many reports join it:
    later members carry their link in their own insert, and the incident is not written."""
    await triage_reports(triage, _reports(THRESHOLD, "F-645", "hours"))
    before, _ = await _incident_state(triage)
    later = _reports(20, "F-645", "hours")
    await triage_reports(triage, later[:10])
    await triage_reports(triage, later[10:])

    incident, linked = await _incident_state(triage)
    assert incident["version"] == before["version"], "the incident was not written again"
    assert len(incident["founders"]) == THRESHOLD
    members = [*before["founders"], *(e.subject for e in later)]
    assert linked == Counter(dict.fromkeys(members, 1)), "each member linked once"
    async for case in triage.store.db.triage_cases.find({}):
        assert case["incidents"] == {incident["public_id"]: "hours"}


async def test_a_report_stored_before_a_crash_is_linked_on_its_redelivery(
    triage: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case stored while its incident was not one yet, by a consumer that stopped before
    joining; the incident is completed by others meanwhile: the redelivery links it, once."""
    founders = _reports(THRESHOLD, "F-647", "wages")
    [stopped] = _reports(1, "F-647", "wages")
    await triage_reports(triage, founders[:2])

    async def stop_before_joining(*_: object, **__: object) -> None:
        raise RuntimeError("the consumer stopped here")

    with monkeypatch.context() as patch:
        patch.setattr(consumer, "link_all", stop_before_joining)
        with pytest.raises(RuntimeError):
            await triage_reports(triage, [stopped])
    await triage_reports(triage, founders[2:])  # completes the founders without it
    await triage_reports(triage, [stopped])
    await triage_reports(triage, [stopped])

    incident, linked = await _incident_state(triage)
    assert set(incident["founders"]) == {e.subject for e in founders}
    assert linked == Counter({e.subject: 1 for e in [*founders, stopped]})
    case = await triage.store.db.triage_cases.find_one({"_id": stopped.subject})
    assert case is not None and case["incidents"] == {incident["public_id"]: "wages"}


async def test_two_consumers_with_overlapping_batches_link_each_member_once(
    triage: Runtime,
) -> None:
    """Two consumers (two store connections) handle overlapping polls of one mass report at
    once, twice over: founders decided once, every case linked once, by whichever path."""
    other_store = Store(triage.settings, TRIAGE_COLLECTIONS)
    other = Runtime(triage.settings, other_store, triage.producer, triage.relay)
    reports = _reports(30, "F-648", "safety")
    try:
        for _ in range(2):
            await asyncio.gather(
                triage_reports(triage, reports[:20]),
                triage_reports(other, reports[10:]),
                triage_reports(other, reports[:5]),
            )
    finally:
        await other_store.close()

    incident, linked = await _incident_state(triage)
    assert len(incident["founders"]) == THRESHOLD
    assert linked == Counter({e.subject: 1 for e in reports}), "each member linked once"
    async for case in triage.store.db.triage_cases.find({}):
        assert case["incidents"] == {incident["public_id"]: "safety"}


async def test_a_redelivered_batch_of_reports_changes_nothing(triage: Runtime) -> None:
    reports = _reports(THRESHOLD + 1, "F-650", "wages")
    await triage_reports(triage, reports)
    cases = {doc["_id"]: doc async for doc in triage.store.db.triage_cases.find({})}
    incident, linked = await _incident_state(triage)

    await triage_reports(triage, reports)
    await triage_reports(triage, [reports[1], reports[0]])

    assert {doc["_id"]: doc async for doc in triage.store.db.triage_cases.find({})} == cases
    assert await _incident_state(triage) == (incident, linked)
    assert linked == Counter({e.subject: 1 for e in reports})


# --- the runner --------------------------------------------------------------------------------


@pytest.fixture
async def producer(
    test_settings: Settings, kafka_engine: ManagedProcess, mongo_engine: ManagedProcess
) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(test_settings)
    await producer.start()
    yield producer
    await producer.stop()


async def test_a_failing_batch_is_applied_one_by_one_and_only_its_poison_is_dead_lettered(
    test_settings: Settings, producer: AIOKafkaProducer
) -> None:
    store = Store(test_settings)
    runtime = Runtime(test_settings, store, producer, relay_for(store, producer))
    effects = store.db[f"effects_{uuid.uuid4().hex[:8]}"]
    subject = str(uuid.uuid4())  # one key, one partition: one poll may hold all of them
    events = [new_event(subject, CaseStatusChanged(status="open")) for _ in range(5)]
    poison = events[2]
    batches: list[int] = []

    async def apply_one(event: Event) -> None:
        if event.id == poison.id:
            raise ValueError("cannot apply this one")
        # Idempotent by event id, as every handler: a batch applied again one by one
        # applies its first events twice.
        await effects.update_one({"_id": event.id}, {"$set": {"applied": True}}, upsert=True)

    async def apply_batch(batch: Sequence[Event]) -> None:
        batches.append(len(batch))
        for event in batch:  # a batch holding the poison fails part way, as a real one may
            await apply_one(event)

    runner = runtime.consume(
        f"batches-{uuid.uuid4().hex[:8]}",
        [TOPIC],
        apply_one,
        deduplicate=False,
        batch=Batch(frozenset({"case.status-changed"}), apply_batch),
    )
    for event in events:
        await publish(producer, event)
    await runner.start()
    try:

        async def all_applied() -> bool:
            wanted = [e.id for e in events if e.id != poison.id]
            return await effects.count_documents({"_id": {"$in": wanted}}) == len(wanted)

        await async_wait_for(all_applied, timeout=60, what="the good events applied")
        found = await find_record(
            test_settings, DEAD_LETTER_TOPIC, holding(poison.id.encode(), runner.group)
        )
        # Only this test's events: the group reads the topic from its start, where the
        # session's other tests left events of their own.
        mine = [e.id for e in events]
        applied = {doc["_id"] async for doc in effects.find({"_id": {"$in": mine}})}
    finally:
        await runner.stop()
        await effects.drop()
        await store.close()
    assert batches, "the events went through the batch handler"
    assert dict(found.headers)["error"] == b"ValueError: cannot apply this one"
    assert applied == {e.id for e in events if e.id != poison.id}, "all but the poison"
