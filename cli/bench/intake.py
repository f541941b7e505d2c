"""`hotline bench intake`: intake's durable throughput and latency, and a burst, beside a raw
`insert_one` of the same document into the same store, measured in the same run.

Everything runs for real on this machine: its own nx-27017 and Apache Kafka (one KRaft
node) in a temporary data directory on free ports, a registry written as triage's admin API
writes it (a factory, an operator key, a linked buyer), and the real intake service
(`python -m hotline.intake`, on a free port; its pid is printed, for a profiler).

Reports are prepared before any clock starts, as `hotline submit` makes them: the recipients
read from intake, content and identity sealed to them, a challenge fetched and solved. Two
things differ, both invisible to the server: the receipt's lookup token and reply key are
random instead of derived with Argon2id (64 MiB, a fraction of a second each: minutes for
thousands; intake stores only a hash of the token, and the public key), and the service runs
with an 8-bit proof of work (HOTLINE_POW_DIFFICULTY, as the tests lower it) instead of 16:
checking a solution is one hash whatever its difficulty, so only the preparation is cheaper.
Every challenge is fetched before the first submission, so all are of that base difficulty.

Measured:
- `--clients` keep-alive clients (one connection each) submit `--reports` reports after a
  warm-up: 201s/s (a 201 is durable: the case and its event are stored in one write), and
  the p50 and p99 of a 201;
- anchor: the same documents, as intake stored them with their outbox entry, inserted with
  raw `insert_one` by as many asyncio tasks into a collection with intake's indexes, in the
  same store: rate, p50, p99;
- a burst: `--burst-clients` clients at once, each on a connection of its own, submitting
  max(--reports, --burst-clients) reports in all: errors (any answer but a 201) and dropped
  connections (transport errors, timeouts included) are counted, with the burst's 201s/s.

The clients run in this process, on the same cores as the service and the engines.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
import httpx

from hotline.intake.collections import INTAKE_CASES
from hotline.shared import registry
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import Event, ReportSubmitted, new_event
from hotline.shared.keys import b64decode_strict, b64encode, generate_keypair
from hotline.shared.outbox import PENDING_FIELD, PROTOCOL_FIELDS
from hotline.shared.pow import solve
from hotline.shared.reports import ProofOfWork, ReportCreate, routing_metadata
from hotline.shared.store import Document, Store
from hotline.triage.collections import COLLECTIONS as TRIAGE

from ..engines.local import SERVICE_START_TIMEOUT, LocalSystem
from ..engines.process import ManagedProcess, free_port, http_ready
from .alerts import _percentiles
from .consumers import _kafka
from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say, workspace

BENCH_POW_BITS = 8  # see the docstring: preparing thousands at 16 bits takes minutes
FACTORY = "F-BENCH-1"
BUYER = "bench-buyer"
REQUEST_TIMEOUT_S = 60.0
WARM_UP = 20  # reports before the clock starts (connections, caches, the first pages)
# A normal-severity category: no escalation, no urgent digest (the same work for every report).
CATEGORIES = ["hours"]
# What happened, as a worker would write it (sealed here: the server never sees it).
TEXT = b"We work 14 hours a day on line 4, seven days a week; the supervisor keeps our cards. " * 3
CONTACT = b"Ask for the worker at the night shift, station 12 (bench)"
ANCHOR_COLLECTION = "bench_anchor_cases"


@click.command("intake")
@click.option("--clients", default=10, show_default=True, help="Keep-alive clients.")
@click.option("--reports", default=500, show_default=True, help="Reports the clients submit.")
@click.option(
    "--burst-clients", default=200, show_default=True, help="Clients at once in the burst."
)
@JSON_OPTION
def bench_intake(clients: int, reports: int, burst_clients: int, as_json: bool) -> None:
    """Intake's durable 201s/s and latency at --clients, beside a raw insert_one of the same
    document; errors and dropped connections in a burst of --burst-clients."""
    if clients < 1:
        raise click.BadParameter("1 or more", param_hint="--clients")
    if reports < clients:
        raise click.BadParameter("at least as many as --clients", param_hint="--reports")
    if burst_clients < 1:
        raise click.BadParameter("1 or more", param_hint="--burst-clients")
    burst_reports = max(reports, burst_clients)
    with engines() as settings:
        asyncio.run(write_registry(settings))
        with services(settings, ["intake"]) as processes:
            say(f"intake runs as pid {processes['intake'].pid} (for a profiler)")
            prepared = prepare_reports(settings, WARM_UP + reports + burst_reports)
            figures = asyncio.run(
                _measure(
                    settings,
                    clients,
                    burst_clients,
                    warm_up=prepared[:WARM_UP],
                    measured=prepared[WARM_UP : WARM_UP + reports],
                    burst=prepared[WARM_UP + reports :],
                )
            )
    for figure in figures:
        echo_figure(figure, as_json)
    say(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


async def _measure(
    settings: Settings,
    clients: int,
    burst_clients: int,
    *,
    warm_up: list[ReportCreate],
    measured: list[ReportCreate],
    burst: list[ReportCreate],
) -> list[Figure]:
    say(f"warm-up: {len(warm_up)} reports")
    await submit(settings.intake_url, warm_up, clients)
    say(f"{clients} clients submitting {len(measured)} reports")
    run = await submit(settings.intake_url, measured, clients)
    if run.failures:
        say(f"  failures at {clients} clients: {dict(run.errors)} {dict(run.dropped)}")
    say(f"anchor: the same {len(measured)} documents by raw insert_one, {clients} tasks")
    raw = await _raw_inserts(settings, measured, clients)
    say(f"burst: {len(burst)} reports from {burst_clients} clients at once")
    peak = await submit(settings.intake_url, burst, burst_clients)

    ms, raw_ms = _percentiles(run.latencies_ms), _percentiles(raw.latencies_ms)
    anchor = f"raw insert_one of the same document, {clients} tasks"
    common = {"clients": clients, "reports": len(measured), "failures": run.failures}
    burst_extra = {
        "clients": burst_clients,
        "reports": len(burst),
        "accepted": peak.accepted,
        "errors": dict(peak.errors),
        "dropped": dict(peak.dropped),
        "rate_per_s": round(peak.rate(), 1),
    }
    return [
        Figure(
            f"intake durable 201s/s at {clients} clients",
            round(run.rate(), 1),
            "reports/s",
            anchor,
            round(raw.rate(), 1),
            "higher",
            common,
        ),
        Figure(
            f"intake 201 latency p50 at {clients} clients",
            round(ms[50], 1),
            "ms",
            f"{anchor}, p50",
            round(raw_ms[50], 2),
            "lower",
            common,
        ),
        Figure(
            f"intake 201 latency p99 at {clients} clients",
            round(ms[99], 1),
            "ms",
            f"{anchor}, p99",
            round(raw_ms[99], 2),
            "lower",
            common,
        ),
        Figure(
            f"intake burst errors and dropped connections at {burst_clients} clients",
            peak.failures,
            "failures",
            "none (the target)",
            0,
            "lower",
            burst_extra,
        ),
        Figure(
            f"intake burst 201s/s at {burst_clients} clients",
            round(peak.rate(), 1),
            "reports/s",
            anchor,
            round(raw.rate(), 1),
            "higher",
            burst_extra,
        ),
    ]


# --- engines, registry, services (the pipeline bench uses these too) --------------------------


@contextmanager
def engines() -> Iterator[Settings]:
    """nx-27017 and Kafka of our own in a temporary data directory, and settings whose
    service ports are free too. Keycloak is nowhere: no service needs one to start (each
    fetches the realm's keys at its first token), and the benches send no token."""
    with workspace(None) as base, _kafka(base) as with_kafka:
        host = with_kafka.host
        intake, triage, notify, audit, keycloak = (free_port() for _ in range(5))
        yield Settings(
            data=with_kafka.data,
            mongo_url=with_kafka.mongo_url,
            kafka_port=with_kafka.kafka_port,
            kafka_controller_port=with_kafka.kafka_controller_port,
            kafka_bootstrap=with_kafka.kafka_bootstrap,
            keycloak_port=keycloak,
            keycloak_url=f"http://{host}:{keycloak}",
            pow_difficulty=BENCH_POW_BITS,
            # One key for every intake instance: a challenge from one is good at another.
            challenge_key=secrets.token_hex(32),
            intake_port=intake,
            triage_port=triage,
            notify_port=notify,
            audit_port=audit,
            intake_url=f"http://{host}:{intake}",
            triage_url=f"http://{host}:{triage}",
            notify_url=f"http://{host}:{notify}",
            audit_url=f"http://{host}:{audit}",
        )


def service_env(settings: Settings) -> dict[str, str]:
    """The environment of a service process of these settings (every HOTLINE_* a service
    reads that could otherwise come from the caller's environment)."""
    env = {
        "HOTLINE_DATA": str(settings.data),
        "HOTLINE_MONGO_URL": settings.mongo_url,
        "HOTLINE_MONGO_DB": settings.mongo_db,
        "HOTLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOTLINE_KEYCLOAK_URL": settings.keycloak_url,
        "HOTLINE_KEYCLOAK_ISSUER": settings.keycloak_issuer,
        "HOTLINE_POW_DIFFICULTY": str(settings.pow_difficulty),
        "HOTLINE_CHALLENGE_KEY": settings.challenge_key,
    }
    for name in ("intake", "triage", "notify", "audit"):
        env[f"HOTLINE_{name.upper()}_PORT"] = str(getattr(settings, f"{name}_port"))
        env[f"HOTLINE_{name.upper()}_URL"] = getattr(settings, f"{name}_url")
    return env


@dataclass(frozen=True)
class Keys:
    """The public keys the bench's registry holds (only public keys are needed here)."""

    operator: bytes
    buyer: bytes


async def write_registry(settings: Settings) -> Keys:
    """A factory, an operator key and a buyer linked to the factory, written as triage's
    admin API writes them (into triage's collections, with their events in its outbox)."""
    _, operator = generate_keypair()
    _, buyer = generate_keypair()
    store = Store(settings, TRIAGE)
    try:
        await store.ensure_indexes()
        await registry.add_factory(store, FACTORY, "Bench Toys", "CN", "Dongguan")
        await registry.add_operator_key(store, b64encode(operator))
        await registry.add_buyer(store, BUYER, "Bench Buyer", b64encode(buyer))
        await registry.link(store, BUYER, FACTORY)
    finally:
        await store.close()
    return Keys(operator, buyer)


@contextmanager
def services(
    settings: Settings, names: Sequence[str], replicas: int = 1
) -> Iterator[dict[str, ManagedProcess]]:
    """The named services (keys of `SERVICES`), `replicas` instances of each, started as
    `hotline up --replicas` starts them (instance k on its port + 10 k, named `name-k`) but
    with these settings, each healthy before this yields; stopped in reverse order."""
    env = service_env(settings)
    instances = [
        instance
        for instance in LocalSystem(settings, replicas=replicas).service_instances()
        if instance.name.rsplit("-", 1)[0] in names or instance.name in names
    ]
    started: dict[str, ManagedProcess] = {}
    try:
        for instance in instances:
            say(f"starting {instance.name} on port {instance.port}")
            started[instance.name] = ManagedProcess(
                name=instance.name,
                command=[sys.executable, "-m", instance.module],
                log_path=settings.logs_dir / f"{instance.name}.log",
                env={**env, f"HOTLINE_{instance.port_setting.upper()}": str(instance.port)},
            ).start()
        for instance in instances:
            url = f"http://{settings.host}:{instance.port}/healthz"
            started[instance.name].wait_until(http_ready(url), SERVICE_START_TIMEOUT, what=url)
        yield started
    finally:
        for process in reversed(list(started.values())):
            process.stop()


# --- reports ----------------------------------------------------------------------------------


def prepare_reports(settings: Settings, count: int) -> list[ReportCreate]:
    """`count` reports at the bench's factory, sealed and their challenges solved (see the
    module docstring for what differs from `hotline submit`: the receipt, the difficulty)."""
    say(f"preparing {count} sealed reports (challenges fetched and solved now)")
    with httpx.Client(base_url=settings.intake_url, timeout=REQUEST_TIMEOUT_S) as http:
        found = http.get(f"/api/recipients/{FACTORY}")
        found.raise_for_status()
        keys = found.json()
        content_keys = {kid: b64decode_strict(pub) for kid, pub in keys["content"].items()}
        identity_keys = {kid: b64decode_strict(pub) for kid, pub in keys["identity"].items()}
        reports = []
        for n in range(count):
            case_id = str(uuid.uuid4())
            urgent = False  # as CATEGORIES: no alert, no digest issued at once
            routing = routing_metadata(FACTORY, CATEGORIES, urgent, "en")
            issued = http.get("/api/challenge").json()
            _, reply_public = generate_keypair()
            reports.append(
                ReportCreate(
                    case_id=case_id,
                    factory=FACTORY,
                    categories=CATEGORIES,
                    urgent=urgent,
                    language="en",
                    channel="phone",
                    lookup_token=secrets.token_hex(32),
                    reply_key=b64encode(reply_public),
                    content=seal_envelope(
                        TEXT + str(n).encode(),
                        case_id=case_id,
                        kind="content",
                        routing=routing,
                        recipients=content_keys,
                    ),
                    identity=seal_envelope(
                        CONTACT,
                        case_id=case_id,
                        kind="identity",
                        routing=routing,
                        recipients=identity_keys,
                    ),
                    pow=ProofOfWork(
                        challenge=issued["challenge"],
                        solution=solve(issued["challenge"], issued["difficulty"]),
                    ),
                )
            )
    return reports


def submitted_event(report: ReportCreate) -> Event:
    """The `report.submitted` event intake announces `report` with (a report from the API,
    no attachments)."""
    return new_event(
        report.case_id,
        ReportSubmitted(
            factory=report.factory,
            categories=report.categories,
            urgent=report.urgent,
            language=report.language,
            channel=report.channel,
            server_encrypted=False,
            content=report.content,
            identity=report.identity,
            attachments=[],
            reply_key=report.reply_key,
        ),
    )


@dataclass
class Submitted:
    """What a run of submissions saw: each 201's latency, the failures by kind, the span."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # answers other than 201, by status
    dropped: Counter[str] = field(default_factory=Counter)  # transport errors, by kind
    started: float = 0.0  # perf_counter at the first POST
    last_201: float = 0.0

    @property
    def accepted(self) -> int:
        return len(self.latencies_ms)

    @property
    def failures(self) -> int:
        return sum(self.errors.values()) + sum(self.dropped.values())

    def rate(self) -> float:
        """201s per second, from the first POST to the last 201."""
        return self.accepted / (self.last_201 - self.started) if self.accepted else 0.0


async def submit(
    url: str | Sequence[str], reports: Sequence[ReportCreate], clients: int
) -> Submitted:
    """Submit `reports` from `clients` clients at once, each on one keep-alive connection of
    its own, each sending its next report as soon as its previous one is answered; with
    several intake URLs, client k goes to the k-th (round robin)."""
    urls = [url] if isinstance(url, str) else list(url)
    result = Submitted()
    bodies = iter([report.model_dump(mode="json") for report in reports])  # shared: each once

    async def client(url: str) -> None:
        async with httpx.AsyncClient(
            base_url=url,
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as http:
            for body in bodies:
                sent = time.perf_counter()
                try:
                    response = await http.post("/api/reports", json=body)
                except httpx.TransportError as exc:
                    result.dropped[type(exc).__name__] += 1
                    continue
                answered = time.perf_counter()
                if response.status_code != 201:
                    result.errors[str(response.status_code)] += 1
                    continue
                result.latencies_ms.append((answered - sent) * 1000)
                result.last_201 = answered

    result.started = time.perf_counter()
    count = min(clients, len(reports))
    await asyncio.gather(*(client(urls[k % len(urls)]) for k in range(count)))
    return result


# --- the anchor -------------------------------------------------------------------------------


async def _raw_inserts(
    settings: Settings, reports: Sequence[ReportCreate], tasks: int
) -> Submitted:
    """The anchor: the documents intake stored for `reports`, each as it was written (with
    its outbox entry, which the relay has removed since), under a new id and receipt hash,
    by raw insert_one from `tasks` tasks into a collection with intake's indexes."""
    store = Store(settings)
    try:
        cases = store.db[INTAKE_CASES.name]
        stored = {doc["_id"]: doc async for doc in cases.find({})}
        documents = [_as_written(stored[report.case_id], report) for report in reports]
        collection = store.db[ANCHOR_COLLECTION]
        await collection.create_indexes(list(INTAKE_CASES.indexes))
        for document in [_as_written(stored[r.case_id], r) for r in reports[:WARM_UP]]:
            await collection.insert_one(document)  # warm-up, as the service had one
        result = Submitted()
        pending = iter(documents)

        async def task() -> None:
            for document in pending:
                sent = time.perf_counter()
                await collection.insert_one(document)
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                result.last_201 = time.perf_counter()

        result.started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(tasks)))
        return result
    finally:
        await store.close()


def _as_written(stored: Document, report: ReportCreate) -> Document:
    """A stored case as `OutboxCollection.insert` wrote it, under a fresh id, receipt and
    challenge (each unique)."""
    event = submitted_event(report)
    state = {key: value for key, value in stored.items() if key not in PROTOCOL_FIELDS}
    return {
        **state,
        "_id": str(uuid.uuid4()),
        "receipt_lookup": secrets.token_hex(32),
        "challenge": secrets.token_urlsafe(16),
        "version": 1,
        "outbox": {event.id: event.model_dump()},
        PENDING_FIELD: 1,
    }
