"""`hotline bench latency`: how long an urgent report takes to reach each place it must reach.

It measures a RUNNING system (`hotline up`, or a test session's), as `hotline bench alerts`
does and with its pieces (the local CA and HTTPS receiver, the factory, buyer and webhook it
registers, the report sealed as `hotline submit` seals it): start the system with

    HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up

and register an operator key (the report is sealed to the factory's recipients). At each
load of `--load` (reports/s), `--reports` urgent reports are submitted at that rate (open
loop: a report's POST starts on its schedule, whether or not the one before has arrived
anywhere), each timed from the start of its POST /api/reports to:

  (a) triaged: its `case.escalated` event on Kafka (triage rated it critical and its outbox
      relay published that; the bench reads the topic with a consumer of its own, no group);
  (b) alert: the buyer's alert at the webhook receiver (`alert:<case id>`, signature checked);
  (c) audit entry: its `report.submitted` entry in the public log (`GET /api/entries`);
  (d) checkpoint: that entry covered by a checkpoint (`GET /checkpoint`, its signature
      verified with the log's `/vkey`, size > the entry's index).

(c) and (d) are polled every `--poll` seconds, only while something is awaited there: the
poll adds up to that much to each. Sealing, the receipt's derivation and the proof of work
are done before the clock starts. p50 and p99 are nearest rank (p99 of fewer than 100 is
the maximum).

Anchor, measured in the same run against the same engines, before each load level: the raw
hop. A document of the report's size inserted into MongoDB, produced to Kafka with acks=all
(to a topic of the bench's own, removed afterwards), read by a bare consumer (no group),
inserted again; timed from the first insert to the end of the second, one after the other.
One such hop is what the report's shortest path (intake → Kafka → a consumer's write) must
pay at least; triage's and notify's paths take two. The issue's targets (p99): alert and
audit entry under 1 s, checkpoint under 2 s.

With `--json` every figure carries `load` (reports/s), `hop`, `percentile` and
`anchor_kind` ("raw hop" or "target"): what `hotline bench chart` draws.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import click
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.events import EventType, topic_for
from hotline.shared.reports import ReportCreate
from hotline.shared.tlog.checkpoint import open_checkpoint
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.note import NoteVerifier, parse_verifier_key

from .alerts import (
    LocalCA,
    WebhookReceiver,
    _BenchWorld,
    _check_notify,
    _percentiles,
    _urgent_report,
    ca_folder,
)
from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say

# Where a report must get to, in the order it usually gets there; what each is called.
HOPS: Final = {
    "triaged": "case escalated on Kafka",
    "alert": "buyer's alert at the webhook",
    "audit entry": "audit entry in /api/entries",
    "checkpoint": "entry covered by a signed checkpoint",
}
TARGETS_MS: Final = {"alert": 1_000.0, "audit entry": 1_000.0, "checkpoint": 2_000.0}  # issue 20
RAW_HOP: Final = "raw hop: insert, Kafka acks=all, bare consumer, insert"
ARRIVAL_TIMEOUT_S: Final = 60.0  # after the last submission, for everything to arrive
ESCALATED: Final = topic_for(EventType.CASE_ESCALATED)
ENTRIES_PAGE: Final = 1000
_Record: TypeAlias = ConsumerRecord[bytes, bytes]


def _loads(text: str) -> list[float]:
    try:
        loads = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            "comma-separated reports/s, e.g. 1,2,5", param_hint="--load"
        ) from None
    if not loads or any(not 0 < load <= 100 for load in loads):
        raise click.BadParameter(
            "at least one rate, each above 0 and at most 100", param_hint="--load"
        )
    return loads


@click.command("latency")
@click.option(
    "--reports",
    type=click.IntRange(1),
    default=30,
    show_default=True,
    help="Urgent reports submitted at each load.",
)
@click.option(
    "--load",
    "load_text",
    default="1",
    show_default=True,
    help="Submission rates in reports/s, comma-separated (several: a sweep, one after the other).",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.005, 1.0),
    default=0.05,
    show_default=True,
    help="Seconds between polls of the audit log (for the entry and checkpoint hops).",
)
@JSON_OPTION
def bench_latency(reports: int, load_text: str, poll: float, as_json: bool) -> None:
    """Latency (p50, p99) of urgent reports from submission to triage, the buyer's alert,
    the public audit log and a signed checkpoint, at each submission rate of --load, beside
    the raw hop (insert, Kafka acks=all, bare consumer, insert) on the same engines.

    Needs a running local system whose notify trusts the bench's CA:
    `HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up`, with an
    operator key registered. It registers a factory, a buyer, its Keycloak user and a
    webhook (removed at the end) on that system.
    """
    loads = _loads(load_text)
    settings = Settings()
    if settings.environment == "production":
        raise click.ClickException("`hotline bench latency` is for a local system only")
    _check_notify(settings)
    verifier = _log_verifier(settings)
    ca = LocalCA.load_or_create(ca_folder(settings))
    with WebhookReceiver(ca) as receiver:
        world = _BenchWorld.create(settings)
        path = f"/bench/{secrets.token_hex(4)}"
        with world.webhook(receiver.url(path)) as secret:
            receiver.expect(path, secret)
            run = _Run(settings, world, receiver, path, verifier, poll)
            say("warm-up: one urgent report")
            run.level([_urgent_report(settings, world.factory)], 1.0)
            for load in loads:
                say(f"[{load:g} reports/s] sealing {reports} reports, solving their proofs of work")
                prepared = [_urgent_report(settings, world.factory) for _ in range(reports)]
                say(f"[{load:g} reports/s] anchor: {reports} raw hops on the same engines")
                raw = _percentiles(asyncio.run(_raw_hops(settings, prepared[0], reports)))
                say(f"[{load:g} reports/s] submitting {reports} urgent reports")
                arrived = run.level(prepared, load)
                for figure in _figures(arrived, raw, load, reports):
                    echo_figure(figure, as_json)
                say(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _figures(
    arrived: dict[str, list[float]], raw: dict[int, float], load: float, reports: int
) -> list[Figure]:
    figures = []
    for hop, label in HOPS.items():
        measured = _percentiles(arrived[hop])
        extra = {"load": load, "hop": hop, "reports": reports}
        for percentile in (50, 99):
            figures.append(
                Figure(
                    figure=f"submission → {label}, p{percentile} at {load:g} reports/s",
                    value=round(measured[percentile], 1),
                    unit="ms",
                    anchor=f"{RAW_HOP}, p{percentile}",
                    anchor_value=round(raw[percentile], 1),
                    better="lower",
                    extra={**extra, "percentile": percentile, "anchor_kind": "raw hop"},
                )
            )
        if hop in TARGETS_MS:
            figures.append(
                Figure(
                    figure=f"submission → {label}, p99 at {load:g} reports/s",
                    value=round(measured[99], 1),
                    unit="ms",
                    anchor="issue 20's p99 target",
                    anchor_value=TARGETS_MS[hop],
                    better="lower",
                    extra={**extra, "percentile": 99, "anchor_kind": "target"},
                )
            )
    return figures


def _log_verifier(settings: Settings) -> NoteVerifier:
    """The audit log's key, from its /vkey: a checkpoint counts only if it verifies."""
    try:
        answer = httpx.get(f"{settings.audit_url}/vkey", timeout=10)
        answer.raise_for_status()
        return parse_verifier_key(answer.text.strip())
    except (httpx.HTTPError, TlogError) as exc:
        raise click.ClickException(
            f"the audit log gives no verifier key at {settings.audit_url}/vkey "
            f"({type(exc).__name__}): is the whole system up?"
        ) from None


# --- one load level ----------------------------------------------------------------------------


@dataclass
class _Arrivals:
    """When each report was submitted and reached each hop (time.monotonic() seconds)."""

    submitted: dict[str, float] = field(default_factory=dict)
    reached: dict[str, dict[str, float]] = field(default_factory=lambda: {h: {} for h in HOPS})
    index: dict[str, int] = field(default_factory=dict)  # its report.submitted entry's index
    refused: list[str] = field(default_factory=list)  # "<status> <reason>" of refused POSTs

    def awaited(self, hop: str) -> set[str]:
        return set(self.submitted) - set(self.reached[hop])

    def complete(self) -> bool:
        return not any(self.awaited(hop) for hop in HOPS)


@dataclass
class _Run:
    settings: Settings
    world: _BenchWorld
    receiver: WebhookReceiver
    path: str
    verifier: NoteVerifier
    poll: float

    def level(self, reports: Sequence[ReportCreate], load: float) -> dict[str, list[float]]:
        """Submit `reports` at `load` per second; each hop's latencies in ms."""
        arrivals = asyncio.run(self._submit_and_watch(reports, load))
        if arrivals.refused:
            raise click.ClickException(
                f"intake refused {len(arrivals.refused)} of {len(reports)} reports at "
                f"{load:g}/s (first: {arrivals.refused[0]})"
            )
        late = {hop: len(arrivals.awaited(hop)) for hop in HOPS if arrivals.awaited(hop)}
        if late:
            if self.receiver.handshake_failures:
                raise click.ClickException(
                    "notify does not trust the bench's receiver (its TLS handshakes failed): "
                    "start the system with "
                    "`HOTLINE_WEBHOOK_CA_FILE=$(hotline bench alerts --print-ca) hotline up`"
                )
            missing = ", ".join(f"{hop}: {count}" for hop, count in late.items())
            raise click.ClickException(
                f"not everything arrived within {ARRIVAL_TIMEOUT_S:.0f} s at {load:g}/s "
                f"(reports missing, by hop: {missing})"
            )
        return {
            hop: [(at - arrivals.submitted[case]) * 1000 for case, at in reached.items()]
            for hop, reached in arrivals.reached.items()
        }

    async def _submit_and_watch(self, reports: Sequence[ReportCreate], load: float) -> _Arrivals:
        arrivals = _Arrivals()
        done = asyncio.Event()
        escalations = _Escalations(self.settings, arrivals)
        await escalations.start()
        watchers = [
            asyncio.create_task(escalations.run(done)),
            asyncio.create_task(self._watch_log(arrivals, done)),
            asyncio.create_task(self._watch_receiver(arrivals, done)),
        ]
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                started = time.monotonic()
                submissions = []
                for number, report in enumerate(reports):
                    await asyncio.sleep(max(0.0, started + number / load - time.monotonic()))
                    submissions.append(asyncio.create_task(self._submit(client, report, arrivals)))
                await asyncio.gather(*submissions)
            deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
            while not arrivals.complete() and time.monotonic() < deadline:
                if any(task.done() for task in watchers):
                    break  # a watcher failed: its exception is raised below
                await asyncio.sleep(0.02)
        finally:
            done.set()
            results = await asyncio.gather(*watchers, return_exceptions=True)
            await escalations.stop()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return arrivals

    async def _submit(
        self, client: httpx.AsyncClient, report: ReportCreate, arrivals: _Arrivals
    ) -> None:
        arrivals.submitted[report.case_id] = time.monotonic()
        answer = await client.post(
            f"{self.settings.intake_url}/api/reports", json=report.model_dump(mode="json")
        )
        if answer.status_code != 201:
            del arrivals.submitted[report.case_id]
            arrivals.refused.append(f"{answer.status_code} {answer.text[:200]}")

    async def _watch_receiver(self, arrivals: _Arrivals, done: asyncio.Event) -> None:
        """Copy the receiver's arrival times of the awaited alerts (it records them itself)."""
        while not done.is_set():
            messages = self.receiver.messages(self.path)
            for case in arrivals.awaited("alert"):
                received = messages.get(f"alert:{case}")
                if received is not None:
                    arrivals.reached["alert"][case] = received.at
            await asyncio.sleep(0.02)

    async def _watch_log(self, arrivals: _Arrivals, done: asyncio.Event) -> None:
        """Poll the public log for the reports' entries, then for checkpoints covering them;
        only while something is awaited there."""
        audit = self.settings.audit_url
        async with httpx.AsyncClient(timeout=10) as client:
            start = await self._checkpoint_size(client)  # entries before it are older
            while not done.is_set():
                if arrivals.awaited("audit entry"):
                    page = await client.get(
                        f"{audit}/api/entries", params={"start": start, "limit": ENTRIES_PAGE}
                    )
                    seen = time.monotonic()
                    page.raise_for_status()
                    for item in page.json():
                        start = item["index"] + 1
                        case = item["entry"].get("subject")
                        if item["entry"].get("type") == EventType.REPORT_SUBMITTED and (
                            case in arrivals.submitted
                        ):
                            arrivals.reached["audit entry"].setdefault(case, seen)
                            arrivals.index[case] = item["index"]
                uncovered = {c for c in arrivals.index if c not in arrivals.reached["checkpoint"]}
                if uncovered:
                    size = await self._checkpoint_size(client)
                    seen = time.monotonic()
                    for case in uncovered:
                        if arrivals.index[case] < size:
                            arrivals.reached["checkpoint"][case] = seen
                await asyncio.sleep(self.poll)

    async def _checkpoint_size(self, client: httpx.AsyncClient) -> int:
        note = await client.get(f"{self.settings.audit_url}/checkpoint")
        if note.status_code == 503:
            return 0  # no checkpoint published yet
        note.raise_for_status()
        try:
            checkpoint, _ = open_checkpoint(
                note.content, self.settings.audit_origin, [self.verifier]
            )
        except TlogError as exc:
            raise click.ClickException(f"the log's checkpoint does not verify: {exc}") from None
        return checkpoint.size


class _Escalations:
    """A consumer of `case.escalated` of the bench's own (no group, from the end of every
    partition): when each submitted case was escalated, as anyone reading Kafka sees it."""

    def __init__(self, settings: Settings, arrivals: _Arrivals) -> None:
        self.settings = settings
        self.arrivals = arrivals
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="hotline-bench-latency",
            enable_auto_commit=False,
            isolation_level="read_committed",  # what the services' consumers read
        )

    async def start(self) -> None:
        assigned = await _served_partitions(self.settings, ESCALATED, wait=0)
        if not assigned:
            raise click.ClickException(f"Kafka serves no topic {ESCALATED}: is the system up?")
        await self.consumer.start()
        self.consumer.assign(assigned)
        await self.consumer.seek_to_end(*assigned)
        for partition in assigned:  # resolved now, so nothing published from here is missed
            await self.consumer.position(partition)

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            batches = await self.consumer.getmany(timeout_ms=100)
            seen = time.monotonic()
            for records in batches.values():
                for record in records:
                    case = (record.key or b"").decode()
                    if case in self.arrivals.submitted:
                        self.arrivals.reached["triaged"].setdefault(case, seen)

    async def stop(self) -> None:
        await self.consumer.stop()


# --- the anchor --------------------------------------------------------------------------------


async def _raw_hops(settings: Settings, report: ReportCreate, count: int) -> list[float]:
    """`count` raw hops, one after the other, each in ms: insert the report's document,
    produce it (acks=all), a bare consumer reads it and inserts it again."""
    tag = secrets.token_hex(4)
    topic, database = f"hotline-bench-latency-{tag}", f"hotline_bench_latency_{tag}"
    body = report.model_dump_json().encode()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="bench")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=10_000
    )
    producer = make_producer(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="hotline-bench-latency-anchor",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        if not await _served_partitions(settings, topic, wait=30):
            raise click.ClickException(f"Kafka did not serve the bench's topic {topic}")
        await producer.start()
        await consumer.start()
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        sent, received = mongo[database]["sent"], mongo[database]["received"]
        hops = []
        for number in range(count + 1):  # the first is a warm-up (connections, metadata)
            key = f"hop-{number}"
            started = time.perf_counter()
            await sent.insert_one({"_id": key, "report": body})
            await producer.send_and_wait(topic, body, key=key.encode())
            record = await _next_record(consumer, partition)
            await received.insert_one({"_id": (record.key or b"").decode(), "report": record.value})
            hops.append((time.perf_counter() - started) * 1000)
        return hops[1:]
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
        await mongo.drop_database(database)
        await mongo.close()


async def _served_partitions(settings: Settings, topic: str, wait: float) -> list[TopicPartition]:
    """The partitions of `topic` once each has a leader (waiting up to `wait` seconds for a
    topic just created); none if the broker does not serve it by then."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="bench")
    await admin.start()
    try:
        deadline = time.monotonic() + wait
        while True:
            for described in await admin.describe_topics([topic]):
                partitions = described["partitions"]
                if (
                    described["error_code"] == 0
                    and partitions
                    and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
                ):
                    return [TopicPartition(topic, p["partition"]) for p in partitions]
            if time.monotonic() >= deadline:
                return []
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _next_record(consumer: AIOKafkaConsumer, partition: TopicPartition) -> _Record:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batches = await consumer.getmany(partition, timeout_ms=1000, max_records=1)
        for records in batches.values():
            for record in records:
                return record
    raise click.ClickException("the raw hop's record did not arrive within 30 s")
