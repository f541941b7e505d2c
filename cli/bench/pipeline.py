"""`hotline bench pipeline`: how long the whole system takes to drain a load of reports, and
what each consumer and intake's relay did meanwhile, beside raw anchors in the same run.

Everything runs for real on this machine: its own nx-27017 and Apache Kafka in a temporary
data directory on free ports, the registry written as triage's admin API writes it (a
factory, an operator key, a linked buyer; triage's relay announces them), and the four
services started as `hotline up` starts them, on free ports. No Keycloak: no service needs
one to start, and nothing here sends a token. Reports are prepared as `hotline bench
intake` prepares them (sealed, challenges solved, before the clock starts; not urgent, so
each report causes the same work), and a warm-up goes through the whole system first.

Then `--clients` keep-alive clients submit `--reports` reports while the bench counts, every
SAMPLE_S seconds, what each service has made durable: intake's published cases (in its
outbox collection: stored less pending), triage's cases, notify's digest items and the audit
log's entries. Figures:
- time from the first POST to the last case triaged, the last digest item stored and the
  last audit entry sequenced (the log's count at rest: every entry the load caused, the
  triage's and the clocks' included), beside the time to the last 201 (intake alone);
- each consumer's events/s during the drain (from its first effect to its last) beside the
  bare consumer of `hotline bench consumers` doing the same writes, run afterwards on the
  same broker and store over the same records; a consumer that keeps up is bounded by what
  reaches it (`behind_last_201_s` in the JSON says how far behind it finished);
- intake's relay: events/s during the drain, and over a backlog of the same cases written
  pending (the relay the service runs, in this process), beside raw produce of the same
  events with the services' producer: serial `send_and_wait`, and batched sends;
- back to idle: the CPU of every process of the run (the four services, nx-27017 and Kafka)
  is sampled every CPU_WINDOW_S; figures are the seconds from the last durable effect until
  every process stays within IDLE_PERCENT of a core of its own CPU before the load (after
  the warm-up), and each process's CPU over the last second at rest beside that;
- with --replicas N, the drain again with N instances of every service (in the same
  consumer groups, intake's clients spread over its N ports) on a database of its own,
  beside the drain with one.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
from aiokafka import AIOKafkaProducer

from hotline.audit_log import storage as audit_storage
from hotline.audit_log.consumer import POLL_RECORDS
from hotline.intake.collections import COLLECTIONS as INTAKE
from hotline.intake.collections import INTAKE_CASES
from hotline.notify.collections import NOTIFY_ITEMS
from hotline.shared.aio import cancel_and_wait
from hotline.shared.bus import make_producer, publish
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventType
from hotline.shared.outbox import PENDING, PROTOCOL_FIELDS, outbox_of, relay_for
from hotline.shared.reports import ReportCreate
from hotline.shared.store import Store
from hotline.triage.collections import TRIAGE_CASES

from ..engines.local import MAX_REPLICAS, REPLICA_PORT_STEP
from .consumers import AUDIT_ANCHOR, NOTIFY_ANCHOR, PRODUCE_CHUNK, TRIAGE_ANCHOR, _anchor, _database
from .figures import JSON_OPTION, Figure, echo_figure
from .intake import (
    BUYER,
    engines,
    prepare_reports,
    services,
    submit,
    submitted_event,
    write_registry,
)
from .workspace import say

SAMPLE_S = 0.25  # between two counts of every service's collection
RECORDS_LOOKED_UP = 200  # digest items looked up by id per count (Counting)
CPU_WINDOW_S = 0.5  # each process's CPU is sampled over windows this long
# Of one core: a process is back to idle within this of its own CPU before the load (Kafka's
# JVM alone idles at several percent).
IDLE_PERCENT = 2.0
IDLE_TARGET_S = 5.0  # issue 20: "back to idle within seconds"
BASELINE_S = 2.0  # each process's CPU before the load is measured over this long
IDLE_WAIT_S = 30.0  # after the counts rest, how long the bench waits for every process idle
QUIET_S = 3.0  # the audit log's count unchanged this long, after the rest is done: at rest
STALL_S = 120.0  # no count moved for this long: the run is stuck
WARM_UP = 10
SERVICE_NAMES = ("intake", "triage", "notify", "audit-log")
ENTRIES = audit_storage.ENTRIES
# The entries every report causes whatever else it does: its submission and its triage.
# Records the audit log's bare consumer reads at least: four of its polls.
AUDIT_ANCHOR_RECORDS = 4 * POLL_RECORDS
PER_REPORT_TYPES = (EventType.REPORT_SUBMITTED, EventType.CASE_TRIAGED)


@click.command("pipeline")
@click.option("--reports", default=1000, show_default=True, help="Reports submitted.")
@click.option("--clients", default=10, show_default=True, help="Keep-alive clients.")
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    help="Then drain again with this many instances of every service (if above 1).",
)
@JSON_OPTION
def bench_pipeline(reports: int, clients: int, replicas: int, as_json: bool) -> None:
    """Time to drain --reports through intake, triage, notify and the audit log; each
    consumer's and the relay's events/s meanwhile, beside bare consumers and raw produce;
    with --replicas N, the drain again with N instances of each, beside the drain with one."""
    if clients < 1:
        raise click.BadParameter("1 or more", param_hint="--clients")
    if reports < clients:
        raise click.BadParameter("at least as many as --clients", param_hint="--reports")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise click.BadParameter(f"1 to {MAX_REPLICAS}", param_hint="--replicas")
    with engines() as settings:
        drain, measured = _run(settings, reports, clients, 1)
        scaled = None
        if replicas > 1:  # a database of its own; the consumer groups go on where they were
            own = settings.model_copy(update={"mongo_db": f"{settings.mongo_db}_replicas"})
            scaled, _ = _run(own, reports, clients, replicas)
        # Last: the anchors publish events of their own, which no service is left to read.
        say("services stopped; measuring the anchors on the same broker and store")
        anchors = asyncio.run(_anchors(settings, measured, drain.entries))
    figures = _figures(reports, clients, drain, anchors)
    if scaled is not None:
        figures += _replica_figures(reports, clients, replicas, drain, scaled)
    for figure in figures:
        echo_figure(figure, as_json)
    say(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _run(
    settings: Settings, reports: int, clients: int, replicas: int
) -> tuple[Drain, list[ReportCreate]]:
    """The registry, `replicas` instances of every service, the warm-up and the drain of
    `reports` (clients spread over the intake instances); the drain and its reports."""
    asyncio.run(write_registry(settings))
    with services(settings, SERVICE_NAMES, replicas) as started:
        prepared = prepare_reports(settings, WARM_UP + reports)
        warm_up, measured = prepared[:WARM_UP], prepared[WARM_UP:]
        sampler = CpuSampler(_processes(settings, {n: p.pid for n, p in started.items()}))
        intakes = [
            f"http://{settings.host}:{settings.intake_port + REPLICA_PORT_STEP * k}"
            for k in range(replicas)
        ]
        drain = asyncio.run(_drain(settings, intakes, clients, warm_up, measured, sampler))
    return drain, measured


# --- counting what each service made durable ----------------------------------------------------


@dataclass
class Series:
    """One service's durable count over time: (perf_counter, count) at each change."""

    name: str
    points: list[tuple[float, int]] = field(default_factory=list)

    def add(self, at: float, count: int) -> None:
        if not self.points or self.points[-1][1] != count:
            self.points.append((at, count))

    @property
    def count(self) -> int:
        return self.points[-1][1] if self.points else 0

    def reached(self, count: int) -> float:
        """When the count first reached `count`."""
        return next(at for at, seen in self.points if seen >= count)

    def rate(self) -> float:
        """Effects per second from the first effect seen to the last (as `bench consumers`
        counts: the first sample's effects are not in the rate)."""
        (first_at, first), (last_at, last) = self.points[1], self.points[-1]
        return (last - first) / (last_at - first_at) if last_at > first_at else 0.0


@dataclass
class Drain:
    started: float
    last_201: float
    accepted: int
    intake_rate: float
    published: Series
    triaged: Series
    items: Series
    recorded: Series  # the "new" items only: one per report and buyer
    logged: Series
    cpu_before: dict[str, float]  # each process's CPU (% of a core) before the load
    cpu_windows: list[tuple[float, dict[str, float]]]  # (end of window, % by process)

    @property
    def entries(self) -> int:
        """The audit log's count at rest."""
        return self.logged.count

    @property
    def last_effect(self) -> float:
        """When the last count moved: the load's last durable effect."""
        return max(series.points[-1][0] for series in self.series())

    def series(self) -> list[Series]:
        return [self.published, self.triaged, self.items, self.logged]

    def idle_after(self) -> float | None:
        """Seconds from the last effect until every process stayed back to idle (`_idle`) to
        the end of sampling; None if the last window was not idle."""
        idle_since = None
        for end, percent in self.cpu_windows:
            if _idle(percent, self.cpu_before):
                idle_since = end - CPU_WINDOW_S if idle_since is None else idle_since
            else:
                idle_since = None
        if idle_since is None:
            return None
        return max(0.0, idle_since - self.last_effect)

    def sampled_after(self) -> float:
        """Seconds sampled after the last effect (a lower bound when idle was not reached)."""
        return self.cpu_windows[-1][0] - self.last_effect

    def cpu_at_rest(self) -> dict[str, float]:
        """Each process's CPU over the last second sampled (at rest: counts unchanged)."""
        last = self.cpu_windows[-int(1 / CPU_WINDOW_S) :]
        return {name: sum(w[1][name] for w in last) / len(last) for name in last[0][1]}


class CpuSampler:
    """The CPU of named processes (% of one core), over consecutive windows."""

    def __init__(self, processes: dict[str, Any]) -> None:
        self.processes = processes  # name -> psutil.Process
        self.windows: list[tuple[float, dict[str, float]]] = []

    def _cpu_seconds(self) -> dict[str, float]:
        import psutil

        seconds = {}
        for name, process in self.processes.items():
            try:
                times = process.cpu_times()
            except psutil.Error:  # it ended: counted as idle from then on
                times = None
            seconds[name] = 0.0 if times is None else times.user + times.system
        return seconds

    async def run(self) -> None:
        before, at = self._cpu_seconds(), time.perf_counter()
        while True:
            await asyncio.sleep(CPU_WINDOW_S)
            now_seconds, now = self._cpu_seconds(), time.perf_counter()
            self.windows.append(
                (
                    now,
                    {
                        name: max(0.0, 100 * (now_seconds[name] - before[name]) / (now - at))
                        for name in now_seconds
                    },
                )
            )
            before, at = now_seconds, now

    def since(self, start: float) -> dict[str, float]:
        """Each process's mean CPU over the windows that ended after `start`."""
        windows = [percent for end, percent in self.windows if end > start] or [self.windows[-1][1]]
        return {name: sum(w[name] for w in windows) / len(windows) for name in windows[0]}


def _idle(percent: dict[str, float], before: dict[str, float]) -> bool:
    """Every process within IDLE_PERCENT of its CPU before the load."""
    return all(cpu < before.get(name, 0.0) + IDLE_PERCENT for name, cpu in percent.items())


def _idle_last_second(
    windows: list[tuple[float, dict[str, float]]], before: dict[str, float]
) -> bool:
    last = windows[-int(1 / CPU_WINDOW_S) :]
    return bool(last) and all(_idle(percent, before) for _, percent in last)


def _processes(settings: Settings, services: dict[str, int]) -> dict[str, Any]:
    """psutil handles of the services (by pid) and of the engines of this run (nx-27017 and
    Kafka: the processes whose command line names the run's data directory)."""
    import psutil

    found = {name: psutil.Process(pid) for name, pid in services.items()}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(settings.data) not in cmdline or process.pid in services.values():
            continue
        if "kafka.Kafka" in cmdline:
            found["kafka"] = process
        elif "nx" in cmdline and "--data-dir" in cmdline:
            found["nx-27017"] = process
    return found


class Counting:
    """What each service has made durable, counted by reads that cost what they return, not
    what is stored: nx-27017's count_documents reads every document (about 0.2 s of its one
    core at 3,000 cases, measured), and six of them every SAMPLE_S slowed the very drain they
    measured (the drain of 5,000 reports took 142 s to triage counted so; intake was held
    at 46 reports/s). Totals are the collections' document counts; intake's pending cases
    are an indexed read of what is pending; the reports' own digest items are looked up by
    id, the RECORDS_LOOKED_UP oldest not seen yet at a time (they are recorded in about the
    order they are sent)."""

    def __init__(self, store: Store, case_ids: Sequence[str]) -> None:
        self.store = store
        self.reports = len(case_ids)
        self.unseen = [f"{BUYER}:{case_id}" for case_id in case_ids]  # a report's "new" item

    async def counts(self) -> dict[str, int]:
        db = self.store.db
        cases = await db[INTAKE_CASES.name].estimated_document_count()
        pending = await db[INTAKE_CASES.name].find(dict(PENDING), {"_id": 1}).to_list(None)
        oldest = self.unseen[:RECORDS_LOOKED_UP]
        items = db[NOTIFY_ITEMS.name]
        seen = {doc["_id"] async for doc in items.find({"_id": {"$in": oldest}}, {"_id": 1})}
        if seen:
            self.unseen = [item for item in self.unseen if item not in seen]
        return {
            "published": cases - len(pending),
            "triaged": await db[TRIAGE_CASES.name].estimated_document_count(),
            "items": await items.estimated_document_count(),
            # The reports' own ("new") records: a triage adds "changed" ones, so the count of
            # all items reaches the number of reports long before the last report is in.
            "recorded": self.reports - len(self.unseen),
            "logged": await db[ENTRIES].estimated_document_count(),
        }


async def _every_report_logged(store: Store, reports: int) -> bool:
    """Whether the log holds the submission and the triage of `reports` reports (a scan of
    the entries: asked only once the counts say it may be so and the log rests)."""
    for event_type in PER_REPORT_TYPES:
        if await store.db[ENTRIES].count_documents({"type": event_type}) < reports:
            return False
    return True


async def _settled(
    settings: Settings, reports: Sequence[ReportCreate], series: dict[str, Series]
) -> None:
    """Count every SAMPLE_S, into `series`, until `reports` (all there are: the warm-up's
    included) are triaged, in the digest and in the log, and the log's count has rested for
    QUIET_S."""
    store = Store(settings)
    counting = Counting(store, [report.case_id for report in reports])
    try:
        last, moved, logged_all = None, time.perf_counter(), False
        while True:
            counts = await counting.counts()
            now = time.perf_counter()
            for name, count in counts.items():
                series.setdefault(name, Series(name)).add(now, count)
            if counts != last:
                last, moved = counts, now
            elif now - moved > STALL_S:
                raise click.ClickException(f"nothing moved for {STALL_S:.0f} s: {counts}")
            done = counts["triaged"] >= len(reports) and counts["recorded"] >= len(reports)
            resting = now - moved >= QUIET_S
            if done and resting and not logged_all and counts["logged"] >= 2 * len(reports):
                # Asked only once the log's count rests: it reads every entry, and asked
                # while the log still writes, it slowed the very entries it waited for.
                logged_all = await _every_report_logged(store, len(reports))
            if logged_all and resting:
                return
            await asyncio.sleep(SAMPLE_S)
    finally:
        await store.close()


async def _drain(
    settings: Settings,
    intakes: Sequence[str],
    clients: int,
    warm_up: list[ReportCreate],
    measured: list[ReportCreate],
    sampler: CpuSampler,
) -> Drain:
    say(f"warm-up: {len(warm_up)} reports through the whole system")
    await submit(intakes, warm_up, clients)
    await _settled(settings, warm_up, {})
    sampling = asyncio.create_task(sampler.run())
    try:
        await asyncio.sleep(BASELINE_S)
        baseline = sampler.since(time.perf_counter() - BASELINE_S)
        say(f"{clients} clients submitting {len(measured)} reports; counting every {SAMPLE_S} s")
        series: dict[str, Series] = {}
        submitting = asyncio.create_task(submit(intakes, measured, clients))
        await _settled(settings, [*warm_up, *measured], series)
        deadline = time.perf_counter() + IDLE_WAIT_S
        while not _idle_last_second(sampler.windows, baseline) and time.perf_counter() < deadline:
            await asyncio.sleep(CPU_WINDOW_S)
    finally:
        await cancel_and_wait(sampling)
    submitted = await submitting
    if submitted.failures:
        raise click.ClickException(
            f"{submitted.failures} submissions failed: {dict(submitted.errors)} "
            f"{dict(submitted.dropped)}"
        )
    return Drain(
        started=submitted.started,
        last_201=submitted.last_201,
        accepted=submitted.accepted,
        intake_rate=submitted.rate(),
        published=series["published"],
        triaged=series["triaged"],
        items=series["items"],
        recorded=series["recorded"],
        logged=series["logged"],
        cpu_before=baseline,
        cpu_windows=list(sampler.windows),
    )


# --- the anchors --------------------------------------------------------------------------------


@dataclass
class Anchors:
    triage: float
    notify: float
    audit: float
    serial_produce: float
    batched_produce: float
    relay_backlog: float


async def _anchors(settings: Settings, measured: Sequence[ReportCreate], entries: int) -> Anchors:
    """Raw produce of the same events, the relay over a backlog of the same cases, and the
    bare consumers of `bench consumers` over the records in Kafka (each into a database of
    its own). The audit log's bare consumer reads at least AUDIT_ANCHOR_RECORDS (its rate
    runs from its first poll to its last: one poll has none), topped up with more reports."""
    # Triage's and notify's first: each case once on the topic (the produce below repeats them).
    say(f"anchor: bare consumers over {len(measured)} reports")
    triage = await _anchor(TRIAGE_ANCHOR)(_database(settings), len(measured))
    notify = await _anchor(NOTIFY_ANCHOR)(_database(settings), len(measured))
    producer = make_producer(settings)
    await producer.start()
    try:
        say(f"anchor: raw produce of {len(measured)} report.submitted events, serial and batched")
        serial = await _produce_rate([submitted_event(r) for r in measured], _serially, producer)
        batched = await _produce_rate([submitted_event(r) for r in measured], _batched, producer)
        say(f"the relay over a backlog of {len(measured)} pending cases")
        backlog = await _relay_backlog(settings, measured, producer)
        # Every record is one more than the log's entries (each entry is one record at
        # least), so `wanted` records are there once the top-up is produced.
        wanted = max(entries, AUDIT_ANCHOR_RECORDS)
        top_up = wanted - entries
        await _batched(
            [submitted_event(measured[n % len(measured)]) for n in range(top_up)], producer
        )
    finally:
        await producer.stop()
    say(f"anchor: the audit log's bare consumer over {wanted} audited records")
    audit = await _anchor(AUDIT_ANCHOR)(_database(settings), wanted)
    return Anchors(triage, notify, audit, serial, batched, backlog)


Produce = Callable[[Sequence[Event], AIOKafkaProducer], Awaitable[None]]


async def _serially(events: Sequence[Event], producer: AIOKafkaProducer) -> None:
    for event in events:
        await publish(producer, event)


async def _batched(events: Sequence[Event], producer: AIOKafkaProducer) -> None:
    for first in range(0, len(events), PRODUCE_CHUNK):  # bounded: the producer's buffer waits
        chunk = events[first : first + PRODUCE_CHUNK]
        await asyncio.gather(*(publish(producer, event) for event in chunk))


async def _produce_rate(
    events: Sequence[Event], produce: Produce, producer: AIOKafkaProducer
) -> float:
    started = time.perf_counter()
    await produce(events, producer)
    return len(events) / (time.perf_counter() - started)


async def _relay_backlog(
    settings: Settings, measured: Sequence[ReportCreate], producer: AIOKafkaProducer
) -> float:
    """Events/s of one relay pass over intake's cases of the drain, written again pending
    (each with its event, through the outbox writer) into a database of their own."""
    source = Store(settings)
    own = _database(settings)
    target = Store(own, INTAKE)
    try:
        stored = {doc["_id"]: doc async for doc in source.db[INTAKE_CASES.name].find({})}
        await target.ensure_indexes()
        writer = outbox_of(target, INTAKE_CASES.name)
        for report in measured:
            state = {k: v for k, v in stored[report.case_id].items() if k not in PROTOCOL_FIELDS}
            await writer.insert(state, submitted_event(report))
        relay = relay_for(target, producer)
        started = time.perf_counter()
        published = await relay.flush()
        return published / (time.perf_counter() - started)
    finally:
        await target.drop_databases()
        await source.close()
        await target.close()


# --- the figures --------------------------------------------------------------------------------


def _figures(reports: int, clients: int, drain: Drain, anchors: Anchors) -> list[Figure]:
    total = WARM_UP + reports
    last_201 = round(drain.last_201 - drain.started, 2)
    intake_alone = f"first POST to the last 201 ({clients} clients; intake alone)"
    common = {"reports": reports, "clients": clients, "intake_per_s": round(drain.intake_rate, 1)}

    def drained(what: str, series: Series, count: int) -> Figure:
        seconds = round(series.reached(count) - drain.started, 2)
        return Figure(
            f"pipeline drain of {reports}: first POST to the {what}",
            seconds,
            "s",
            intake_alone,
            last_201,
            "lower",
            common,
        )

    def consumed(name: str, series: Series, anchor: str, value: float) -> Figure:
        behind = round(series.points[-1][0] - drain.last_201, 2)
        return Figure(
            f"{name} events/s during the drain",
            round(series.rate(), 1),
            "events/s",
            anchor,
            round(value, 1),
            "higher",
            {**common, "behind_last_201_s": behind},
        )

    bare = "bare AIOKafkaConsumer, same writes (bench consumers' anchor)"
    relay = "intake relay events/s"
    idle_after = drain.idle_after()
    at_rest = drain.cpu_at_rest()
    idle = [
        Figure(
            f"seconds from the last durable effect until every process is back within "
            f"{IDLE_PERCENT:g}% of a core of its CPU before the load",
            round(drain.sampled_after() if idle_after is None else idle_after, 2),
            "s",
            "issue 20's target: back to idle within seconds",
            IDLE_TARGET_S,
            "lower",
            {**common, "processes": sorted(at_rest), "idle_reached": idle_after is not None},
        ),
        *(
            Figure(
                f"CPU of {name} over the last second at rest",
                round(percent, 2),
                "% of a core",
                f"{name} before the load (after the warm-up)",
                round(drain.cpu_before.get(name, 0.0), 2),
                "lower",
                common,
            )
            for name, percent in sorted(at_rest.items())
        ),
    ]
    return [
        drained("last case triaged", drain.triaged, total),
        drained("last digest item stored", drain.recorded, total),
        drained("last audit entry sequenced", drain.logged, drain.entries),
        consumed("triage", drain.triaged, f"{bare}, insert per event", anchors.triage),
        consumed("notify", drain.items, f"{bare}, insert per event", anchors.notify),
        consumed("audit-log", drain.logged, f"{bare}, insert_many per poll", anchors.audit),
        consumed(
            "intake relay",
            drain.published,
            "raw produce, serial send_and_wait",
            anchors.serial_produce,
        ),
        consumed(
            "intake relay", drain.published, "raw produce, batched sends", anchors.batched_produce
        ),
        Figure(
            f"{relay} over a backlog of {reports} pending cases",
            round(anchors.relay_backlog, 1),
            "events/s",
            "raw produce, serial send_and_wait",
            round(anchors.serial_produce, 1),
            "higher",
            common,
        ),
        Figure(
            f"{relay} over a backlog of {reports} pending cases",
            round(anchors.relay_backlog, 1),
            "events/s",
            "raw produce, batched sends",
            round(anchors.batched_produce, 1),
            "higher",
            common,
        ),
        *idle,
    ]


def _replica_figures(
    reports: int, clients: int, replicas: int, one: Drain, scaled: Drain
) -> list[Figure]:
    """The drain with `replicas` instances of every service beside the drain with one."""
    common = {"reports": reports, "clients": clients, "replicas": replicas}

    def beside(what: str, moment: Callable[[Drain], float]) -> Figure:
        return Figure(
            f"pipeline drain of {reports} with {replicas} replicas: first POST to the {what}",
            round(moment(scaled) - scaled.started, 2),
            "s",
            "the same with 1 replica (same run)",
            round(moment(one) - one.started, 2),
            "lower",
            common,
        )

    total = WARM_UP + reports
    return [
        beside("last 201", lambda d: d.last_201),
        beside("last case triaged", lambda d: d.triaged.reached(total)),
        beside("last digest item stored", lambda d: d.recorded.reached(total)),
        beside("last audit entry sequenced", lambda d: d.logged.reached(d.entries)),
    ]
