"""The regulation clocks (issue 18) against the running services: started on triage with
due times by severity, stopped by what they wait for (an acknowledgement, a claim,
feedback), the feedback clock started again at the acknowledgement, and breaches detected
by the scheduler when its clock is moved past the due time, published once however many
schedulers race, and visible in the operator's queue.

Cases are real reports (`hotline submit`) triaged by the running triage, whose events are
read back from Kafka. The breach rounds run in this process (`clocks.breach_round`, and
`clocks.watch_clocks` on a ManualClock for the delay) on the same store as the running
triage, each on a store connection of its own: the running triage's scheduler reads the
machine's time, which no test moves. A round at a moved time also breaches whatever other
modules' cases fall due before it; the assertions are about this module's cases only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import MongoClient
from pymongo.collection import Collection

from hotline.cli.engines import kafka
from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.bus import make_producer
from hotline.shared.clock import ManualClock
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventError, EventType, parse_event, topic_for
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Databases, Store
from hotline.triage.clocks import add_months, breach_round, watch_clocks
from hotline.triage.collections import COLLECTIONS
from tests.support.cli import hotline_json
from tests.support.registry import AdminApi, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import async_wait_for, wait_for

Document = dict[str, Any]
WAIT = 60.0
STARTED = topic_for(EventType.CLOCK_STARTED)
STOPPED = topic_for(EventType.CLOCK_STOPPED)
BREACHED = topic_for(EventType.CLOCK_BREACHED)
SECOND = timedelta(seconds=1)
DELAY_SAMPLES = 5
BREACH_WITHIN = 10.0  # seconds from the moved clock to the breach on Kafka


@dataclass
class World:
    settings: Settings
    mongo: Databases[Collection[Document]]
    factory: str

    def token(self, user: str = "operator") -> str:
        return password_token(self.settings, user, user)

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        url = f"{self.settings.triage_url}{path}"
        return httpx.request(method, url, json=body, headers=headers, timeout=60, verify=tls())

    def case(self, case_id: str) -> Document:
        found = self.mongo.triage_cases.find_one({"_id": case_id})
        assert found is not None
        return found

    def summary(self, case_id: str) -> Document:
        """The case as the operator's queue lists it."""
        page = self.call("GET", f"/api/cases?factory={self.factory}&limit=200")
        assert page.status_code == 200, page.text
        [found] = [case for case in page.json()["cases"] if case["case_id"] == case_id]
        return dict(found)


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = system.settings
    admin = AdminApi(settings)
    admin.operator_key_file(tmp_path_factory.mktemp("keys"))
    factory = unique_factory_code()
    admin.created("factories", {"code": factory, "name": "Osprey Shoes", "country": "VN"})
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    with client:
        yield World(settings, Databases(client, settings.mongo_db), factory)


def submit(world: World, category: str) -> str:
    """A real report; returns its case id once triage has stored the case."""
    submitted = hotline_json(
        "submit", "--factory", world.factory, "--category", category, "--text", "a report"
    )
    case_id: str = submitted["case_id"]
    wait_for(
        lambda: world.mongo.triage_cases.find_one({"_id": case_id}, {"_id": 1}),
        timeout=WAIT,
        what="the case at triage",
    )
    return case_id


def received(case: Document) -> datetime:
    return parse_time(case["received"])


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def case_events(settings: Settings, topic: str, case_id: str) -> list[Event]:
    """The events of `case_id` on `topic`, in the order of its partition (the case id is
    the key: one partition)."""
    found = []
    for raw in await records_on(settings, topic):
        try:
            event = parse_event(raw)
        except EventError:
            continue
        if event.subject == case_id:
            found.append(event)
    return found


def published(world: World, topic: str, case_id: str, count: int) -> list[Event]:
    """The case's events on `topic` once there are at least `count`."""

    def found() -> list[Event] | None:
        events = asyncio.run(case_events(world.settings, topic, case_id))
        return events if len(events) >= count else None

    return wait_for(found, timeout=WAIT, what=f"{count} event(s) of {case_id} on {topic}")


def clocks_of(events: list[Event]) -> dict[str, Document]:
    return {event.data["clock"]: event.data for event in events}


@asynccontextmanager
async def scheduler_runtime(settings: Settings, relay: bool) -> AsyncIterator[Runtime]:
    """A triage runtime of this process on a store connection of its own, as one more
    replica's scheduler has. Without `relay` its writes are published by the running
    triage's relay (its periodic pass), as another replica's would be."""
    store = Store(settings, COLLECTIONS)
    producer = make_producer(settings)
    await producer.start()
    runtime = Runtime(settings, store, producer, relay_for(store, producer))
    if relay:
        await runtime.relay.start()
    try:
        yield runtime
    finally:
        if relay:
            await runtime.relay.stop()
        await producer.stop()
        await store.close()


class WatchedClock(ManualClock):
    """A manual clock that says when a scheduler first waits on it (its round is done)."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.waiting = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        self.waiting.set()
        await super().wait(seconds)


# --- started on triage -----------------------------------------------------------------------


def test_triage_starts_the_clocks_with_due_times_by_severity(world: World) -> None:
    critical, normal = submit(world, "safety"), submit(world, "hours")

    started = clocks_of(published(world, STARTED, critical, 3))
    at = received(world.case(critical))
    assert started == {
        "acknowledgement": {"clock": "acknowledgement", "due": iso(at + timedelta(hours=24))},
        "first-action": {"clock": "first-action", "due": iso(at + timedelta(hours=4))},
        "feedback": {"clock": "feedback", "due": iso(add_months(at + timedelta(days=7), 3))},
    }
    stored = world.case(critical)
    assert {name: state["state"] for name, state in stored["clocks"].items()} == dict.fromkeys(
        started, "running"
    )
    assert stored["clock_next"] == "clock:" + iso(at + timedelta(hours=4)), "the earliest due"

    started = clocks_of(published(world, STARTED, normal, 2))
    at = received(world.case(normal))
    assert started == {
        "acknowledgement": {"clock": "acknowledgement", "due": iso(at + timedelta(days=7))},
        "feedback": {"clock": "feedback", "due": iso(add_months(at + timedelta(days=7), 3))},
    }, "no first-action clock below critical"
    assert world.summary(normal)["breached"] == []


# --- stopped by what they wait for ------------------------------------------------------------


def test_an_acknowledgement_stops_its_clock_and_starts_feedback_from_it(world: World) -> None:
    case_id = submit(world, "hours")
    published(world, STARTED, case_id, 2)
    hotline_json(
        "cases",
        "reply",
        case_id,
        "--kind",
        "acknowledgement",
        "--text",
        "we read it",
        token=world.token(),
    )
    [stop] = published(world, STOPPED, case_id, 1)
    assert stop.data == {"clock": "acknowledgement", "met": True}
    restarted = published(world, STARTED, case_id, 3)[2]
    acknowledged = parse_time(world.case(case_id)["acknowledged"])
    assert restarted.data == {"clock": "feedback", "due": iso(add_months(acknowledged, 3))}
    stored = world.case(case_id)
    assert stored["clocks"]["acknowledgement"] == {
        "due": iso(received(stored) + timedelta(days=7)),
        "state": "stopped",
        "met": True,
    }
    assert stored["clock_next"] == "clock:" + restarted.data["due"], "feedback is what runs"

    # A second acknowledgement stops nothing and starts nothing again; feedback stops it.
    for kind in ("acknowledgement", "feedback"):
        hotline_json(
            "cases", "reply", case_id, "--kind", kind, "--text", "news", token=world.token()
        )
    stops = published(world, STOPPED, case_id, 2)
    assert [event.data for event in stops] == [
        {"clock": "acknowledgement", "met": True},
        {"clock": "feedback", "met": True},
    ]
    assert len(asyncio.run(case_events(world.settings, STARTED, case_id))) == 3
    assert world.case(case_id)["clock_next"] is None, "nothing runs any more"


def test_a_status_move_to_acknowledged_stops_the_acknowledgement_clock(world: World) -> None:
    case_id = submit(world, "wages")
    published(world, STARTED, case_id, 2)
    moved = world.call("POST", f"/api/cases/{case_id}/status", {"status": "acknowledged"})
    assert moved.status_code == 200, moved.text
    [stop] = published(world, STOPPED, case_id, 1)
    assert stop.data == {"clock": "acknowledgement", "met": True}
    assert published(world, STARTED, case_id, 3)[2].data["clock"] == "feedback"

    closed = world.call(
        "POST", f"/api/cases/{case_id}/status", {"status": "closed", "reason": "withdrawn"}
    )
    assert closed.status_code == 200, closed.text
    stops = published(world, STOPPED, case_id, 2)
    assert stops[1].data == {"clock": "feedback", "met": True}, "a final status stops them all"
    assert world.case(case_id)["clock_next"] is None


def test_a_claim_is_the_first_action_on_a_critical_case(world: World) -> None:
    case_id = submit(world, "forced-labour")
    published(world, STARTED, case_id, 3)
    claimed = world.call("POST", f"/api/cases/{case_id}/claim")
    assert claimed.status_code == 200, claimed.text
    [stop] = published(world, STOPPED, case_id, 1)
    assert stop.data == {"clock": "first-action", "met": True}
    stored = world.case(case_id)
    assert stored["clocks"]["acknowledgement"]["state"] == "running"
    assert stored["clock_next"] == "clock:" + stored["clocks"]["acknowledgement"]["due"]


# --- breaches --------------------------------------------------------------------------------


async def test_a_breach_is_published_once_however_many_schedulers_race(world: World) -> None:
    case_id = await asyncio.to_thread(submit, world, "abuse")
    at = received(world.case(case_id))
    due = at + timedelta(hours=4)
    async with (
        scheduler_runtime(world.settings, relay=False) as one,
        scheduler_runtime(world.settings, relay=False) as other,
    ):
        before = world.case(case_id)["version"]
        await breach_round(one, due)  # due, not past it: nothing breaches yet
        assert world.case(case_id)["version"] == before
        assert world.case(case_id)["clocks"]["first-action"]["state"] == "running"

        # Both schedulers' rounds at once, three times over, at a time past the due hour.
        past = due + SECOND
        for _ in range(3):
            await asyncio.gather(breach_round(one, past), breach_round(other, past))

    async def breached() -> list[Event] | None:
        events = await case_events(world.settings, BREACHED, case_id)
        return events or None

    [breach] = await async_wait_for(breached, timeout=WAIT, what="the breach on Kafka")
    assert breach.data == {"clock": "first-action", "due": iso(due)}
    stored = world.case(case_id)
    assert stored["clocks"]["first-action"]["state"] == "breached"
    assert stored["clocks"]["acknowledgement"]["state"] == "running", "due in 24 hours"
    assert stored["clock_next"] == "clock:" + iso(at + timedelta(hours=24))
    summary = await asyncio.to_thread(world.summary, case_id)
    assert summary["breached"] == ["first-action"], "the operator's queue shows it"

    # The operator acts at last: the clock stops, late, and is no longer shown breached.
    claimed = await asyncio.to_thread(world.call, "POST", f"/api/cases/{case_id}/claim")
    assert claimed.status_code == 200, claimed.text

    async def stopped() -> list[Event] | None:
        return await case_events(world.settings, STOPPED, case_id) or None

    [stop] = await async_wait_for(stopped, timeout=WAIT, what="the late stop on Kafka")
    assert stop.data == {"clock": "first-action", "met": False}
    assert (await asyncio.to_thread(world.summary, case_id))["breached"] == []
    # Every breach event written is on Kafka by now (the stop is after it in the
    # partition); still exactly one record of it, after six racing rounds.
    assert len(await case_events(world.settings, BREACHED, case_id)) == 1

    # What a compliance officer proves it with: the public audit log holds the case's
    # escalation, the breach (once) and the late stop.
    def logged() -> list[str] | None:
        found = httpx.get(
            f"{world.settings.audit_url}/api/entries",
            params={"case": case_id, "limit": 1000},
            verify=tls(),
        )
        types = [entry["entry"]["type"] for entry in found.json()]
        return types if "clock.stopped" in types and "clock.breached" in types else None

    types = await asyncio.to_thread(wait_for, logged, timeout=WAIT, what="the clocks in the log")
    assert types.count("clock.breached") == 1
    assert "case.escalated" in types


async def test_breach_detection_delay_of_a_running_scheduler(world: World) -> None:
    """A scheduler task on a ManualClock, as triage runs it (with its own relay): the time
    from moving the clock past a due time to the breach event arriving at a Kafka consumer
    already positioned at the topic's end. A few samples, each a new case and scheduler."""
    [count] = [t["partitions"] for t in kafka.declared_topics() if t["name"] == BREACHED]
    partitions = [TopicPartition(BREACHED, p) for p in range(count)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=world.settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    delays = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # resolved now: before any clock moves
        for _ in range(DELAY_SAMPLES):
            delays.append(await _one_breach_delay(world, consumer))
    finally:
        await consumer.stop()
    shown = ", ".join(f"{delay * 1000:.0f}" for delay in delays)
    print(f"\nbreach detection delay (clock moved -> event consumed), ms: {shown}")
    assert max(delays) < BREACH_WITHIN, f"a breach took {max(delays):.1f} s to reach Kafka"


async def _one_breach_delay(world: World, consumer: AIOKafkaConsumer) -> float:
    case_id = await asyncio.to_thread(submit, world, "child-labour")
    due = received(world.case(case_id)) + timedelta(hours=4)
    clock = WatchedClock(due - timedelta(minutes=1))
    async with scheduler_runtime(world.settings, relay=True) as runtime:
        scheduler = asyncio.create_task(watch_clocks(runtime, clock))
        try:
            # Its first round (a minute before the due time) is done once it waits.
            await asyncio.wait_for(clock.waiting.wait(), timeout=WAIT)
            assert world.case(case_id)["clocks"]["first-action"]["state"] == "running"
            moved = time.monotonic()
            clock.advance(timedelta(minutes=2))
            return await _breach_arrival(consumer, case_id) - moved
        finally:
            scheduler.cancel()
            await asyncio.gather(scheduler, return_exceptions=True)


async def _breach_arrival(consumer: AIOKafkaConsumer, case_id: str) -> float:
    """When the breach of `case_id` arrives (monotonic time)."""
    async with asyncio.timeout(WAIT):
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    try:
                        event = parse_event(record.value or b"")
                    except EventError:
                        continue
                    if event.subject == case_id:
                        return time.monotonic()
