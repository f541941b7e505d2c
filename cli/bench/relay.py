"""`hotline bench relay`: what one outbox relay pass costs once every case is published.

Everything runs for real on this machine: its own nx-27017 and Kafka (in a temporary data
directory, on free ports; the Kafka distribution is the machine's shared one), the relay the
services run, over the intake service's outbox collection. The bench seeds `--cases`
intake cases, each written with its `report.submitted` event in the outbox, lets the relay
publish them all to Kafka, then times further relay passes: with nothing left to publish, a
pass should read no document.

Documents read are counted at the client (every document in a `find`/`getMore` reply, by
PyMongo's command monitoring), and the server's plan for the relay's query is shown, so a
query that scans the table but returns nothing is visible too. Anchors, measured in the same
run on the same collection: an indexed `find_one` by id, an indexed query that matches
nothing, and a full scan (a count on a field no index covers).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pymongo import monitoring

from hotline.intake.collections import COLLECTIONS, INTAKE_CASES
from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import Event, ReportSubmitted, new_event
from hotline.shared.keys import generate_keypair, key_id
from hotline.shared.outbox import outbox_of, relay_for
from hotline.shared.store import Document, Store

from ..engines import kafka, mongo
from ..engines.process import ManagedProcess, free_port
from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say

SEED_WRITERS = 8
ANCHOR_REPEATS = 200


class ReadCounter(monitoring.CommandListener):
    """Counts the documents the server hands this process in `find`/`getMore` replies and
    keeps the filters of the `find` commands sent (PyMongo command monitoring)."""

    def __init__(self) -> None:
        self.read: Counter[str] = Counter()
        self.filters: list[dict[str, Any]] = []
        self._collections: dict[int, str] = {}

    def reset(self) -> None:
        self.read.clear()
        self.filters.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self._collections[event.request_id] = event.command["find"]
            self.filters.append(dict(event.command.get("filter", {})))
        elif event.command_name == "getMore":
            self._collections[event.request_id] = event.command["collection"]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        collection = self._collections.pop(event.request_id, None)
        cursor = event.reply.get("cursor") if collection else None
        if cursor:
            batch = cursor.get("firstBatch", cursor.get("nextBatch", []))
            self.read[collection or ""] += len(batch)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._collections.pop(event.request_id, None)


@click.command("relay")
@click.option("--cases", default=100_000, show_default=True, help="Published cases to seed.")
@click.option("--passes", default=3, show_default=True, help="Relay passes timed (median).")
@JSON_OPTION
def bench_relay(cases: int, passes: int, as_json: bool) -> None:
    """Documents read and time of one outbox relay pass over published cases, beside an
    indexed find_one, an empty indexed query and a full scan of the same collection."""
    if cases < 1:
        raise click.BadParameter("1 or more", param_hint="--cases")
    if passes < 1:
        raise click.BadParameter("1 or more", param_hint="--passes")
    with _engines() as settings:
        lines, figures = asyncio.run(_measure(settings, cases, passes))
    if as_json:
        for figure in figures:
            echo_figure(figure, as_json)
    else:
        for line in lines:
            click.echo(line)


@contextmanager
def _engines() -> Iterator[Settings]:
    """nx-27017 and Kafka in a temporary data directory, on free ports."""
    data = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    base = Settings()
    settings = Settings(
        data=data,
        engines=base.engines_dir,  # the machine's engines: download the jars once
        mongo_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )
    processes: list[ManagedProcess] = []
    try:
        say(f"starting nx-27017 on port {settings.mongo_port} in {data}")
        processes.append(mongo.start(settings))
        kafka.prepare(settings)
        say(f"starting Kafka on port {settings.kafka_port}")
        processes.append(kafka.start(settings))
        kafka.create_topics(settings)
        yield settings
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(data, ignore_errors=True)


def _cases(count: int) -> Iterator[tuple[Document, Event]]:
    """Intake cases as `submit_report` writes them, each with its `report.submitted` event."""
    _, operator = generate_keypair()
    routing = {"factory": "F-001", "categories": ["wages"], "urgent": False, "language": "en"}
    content = seal_envelope(
        b"x" * 300,
        case_id="bench",
        kind="content",
        routing=routing,
        recipients={key_id(operator): operator},
    )
    for n in range(count):
        case_id = f"case-{n:08d}"
        event = new_event(
            case_id,
            ReportSubmitted(
                factory="F-001",
                categories=["wages"],
                urgent=False,
                language="en",
                channel="web",
                server_encrypted=False,
                content=content,
                identity=None,
            ),
        )
        document = {
            "_id": case_id,
            **routing,
            "channel": "web",
            "server_encrypted": False,
            "receipt_lookup": secrets.token_hex(16),
            "content": content.model_dump(),
            "identity": None,
            "status": "received",
        }
        yield document, event


async def _median_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _measure(settings: Settings, cases: int, passes: int) -> tuple[list[str], list[Figure]]:
    counter = ReadCounter()
    monitoring.register(counter)  # every client created from here on reports to it
    store = Store(settings, COLLECTIONS)  # intake's store, as its lifespan opens it
    producer = make_producer(settings)
    try:
        await store.ensure_indexes()
        await producer.start()
        writer = outbox_of(store, INTAKE_CASES.name)
        collection = writer.collection
        say(f"seeding {cases:,} intake cases through the outbox writer, {SEED_WRITERS} at a time")
        started = time.perf_counter()
        pending = _cases(cases)
        written = Counter[str]()

        async def seed() -> None:
            for document, event in pending:  # one generator shared: each case written once
                await writer.insert(document, event)
                written["cases"] += 1
                if written["cases"] % 10_000 == 0:
                    say(f"  {written['cases']:,} cases")

        await asyncio.gather(*(seed() for _ in range(SEED_WRITERS)))
        seeded_s = time.perf_counter() - started

        relay = relay_for(store, producer)  # the relay intake's lifespan runs
        say(f"first relay pass: publishing {cases:,} events to Kafka")
        started = time.perf_counter()
        published = await relay.flush()
        publish_s = time.perf_counter() - started

        say(f"timing {passes} relay passes with nothing left to publish")
        counter.reset()
        pass_ms = await _median_ms(relay.flush, passes)
        read = counter.read[INTAKE_CASES.name] // passes
        relay_filters = list(counter.filters)
        plan = await collection.find(relay_filters[0] if relay_filters else {}).explain()

        say("timing the anchors")
        find_one_ms = await _median_ms(
            lambda: collection.find_one({"_id": f"case-{cases // 2:08d}"}), ANCHOR_REPEATS
        )
        empty_ms = await _median_ms(
            lambda: collection.find({"receipt_lookup": "absent"}).to_list(), ANCHOR_REPEATS
        )
        scan_ms = await _median_ms(lambda: collection.count_documents({"no_index": 1}), passes)
    finally:
        await producer.stop()
        await store.close()
    extra = {"cases": cases, "passes": passes}
    relay_pass = f"relay pass over {cases:,} published cases"
    figures = [
        Figure(
            relay_pass,
            round(pass_ms, 2),
            "ms",
            "indexed query matching nothing",
            round(empty_ms, 2),
            "lower",
            extra,
        ),
        Figure(
            relay_pass,
            round(pass_ms, 2),
            "ms",
            "full scan (count, unindexed field)",
            round(scan_ms, 2),
            "lower",
            extra,
        ),
        Figure(
            f"documents read by a {relay_pass}",
            read,
            "documents",
            "none: every case is published",
            0,
            "lower",
            {**extra, "plan": _plan_text(plan)},
        ),
        Figure(
            "first relay pass, publishing every case",
            round(published / publish_s, 1),
            "events/s",
            "none here: `hotline bench pipeline` sets the relay beside raw produce",
            0,
            "higher",
            extra,
        ),
    ]
    lines = [
        f"nx-27017, Kafka; {cases:,} intake cases seeded in {seeded_s:.1f} s; "
        f"the first relay pass published {published:,} events in {publish_s:.1f} s",
        f"relay pass over {cases:,} published cases: {read:,} documents read, "
        f"{pass_ms:,.1f} ms (median of {passes})",
        f"  its query: {relay_filters[0] if relay_filters else None}; "
        f"server plan: {_plan_text(plan)}",
        f"anchor: indexed find_one by _id            : {find_one_ms:8.2f} ms",
        f"anchor: indexed query matching nothing     : {empty_ms:8.2f} ms",
        f"anchor: full scan (count, unindexed field) : {scan_ms:8.1f} ms",
    ]
    return lines, figures


def _plan_text(explained: dict[str, Any]) -> str:
    """The SQLite plan nx-27017 reports for a find (`SCAN` reads every row)."""
    plan = explained.get("queryPlanner", {}).get("winningPlan", [])
    if isinstance(plan, list):
        return "; ".join(str(step.get("detail", step)) for step in plan) or "?"
    return str(plan)
