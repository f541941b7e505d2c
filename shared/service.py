"""What every service process has: its clients (created in the lifespan, never at import),
the outbox relay, its consumers, `/healthz`, and uvicorn run under the logging policy.

`/healthz` answers 200 `{"status": "ok"}`, or 503 `{"status": "degraded", ...}` naming what
is down: `"kafka": "unreachable"` (the probe's cached state, `bus.KafkaHealth`),
`"mongodb": "unreachable"` (a ping bounded by HEALTH_PING_TIMEOUT), `"stopped": [...]` (the
background work that died). It never waits longer than that one bounded ping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .aio import cancel_and_wait
from .auth import TokenVerifier, install_token_verifier
from .bus import (
    AppliedEvents,
    Batch,
    ConsumerRunner,
    EachEvent,
    Handler,
    InBatches,
    KafkaHealth,
    Strategy,
    make_producer,
)
from .config import Settings
from .logpolicy import configure_logging
from .outbox import OutboxRelay, relay_for
from .registry import RegistryReader
from .store import Collections, Store

log = logging.getLogger("hotline.service")

HEALTH_PING_TIMEOUT = 1.0  # seconds: a store that takes longer to answer a ping is down


@dataclass
class Runtime:
    """The live clients of one service process (kept in `app.state.runtime`)."""

    settings: Settings
    store: Store
    producer: AIOKafkaProducer
    relay: OutboxRelay
    consumers: list[ConsumerRunner] = field(default_factory=list)
    # Periodic work of the service (a scheduler, a deliverer): name -> what runs it.
    tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    # Whether Kafka answers; its probe runs in `service_lifespan` only.
    kafka: KafkaHealth = field(init=False)
    # The registry as last read, read again once it was written (intake's per report).
    registry: RegistryReader = field(init=False)

    def __post_init__(self) -> None:
        self.kafka = KafkaHealth(self.producer)
        self.registry = RegistryReader(self.store)

    def consume(
        self,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        *,
        deduplicate: bool,
        batch: Batch | None = None,
    ) -> ConsumerRunner:
        """Run `handler` once per event of `topics` in consumer group `group` (started with
        the service).

        `deduplicate` is each registration's explicit choice. True is for a handler that is
        not idempotent by construction: the runner then records every event id it applied
        in `applied_events` and skips those on redelivery (two more round trips per event).
        No handler of the project needs it: triage inserts the case under the case id and
        notify each digest item under `buyer:case`, so a redelivered event meets a duplicate
        key and changes nothing (the audit log's batches are idempotent by the sequencer's
        unique event id, and do not come through here).

        With `batch`, a poll's events of its types go through it together (`bus.InBatches`),
        the others and a batch that fails through `handler`, one by one."""
        applied = AppliedEvents(self.store.db.applied_events, group) if deduplicate else None
        if batch is not None and applied is not None:
            raise ValueError("a batch handler must be idempotent by itself (deduplicate=False)")
        strategy: Strategy = EachEvent(handler, applied=applied)
        if batch is not None:
            strategy = InBatches(batch, EachEvent(handler))
        runner = ConsumerRunner(self.settings, self.producer, group, topics, strategy)
        self.consumers.append(runner)
        return runner

    def background(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `run()` as a task of the service from start-up (after the consumers) until
        shutdown (cancelled before the consumers stop). `run` loops on its own; its state
        lives in the store, so a restart picks it up where it stopped."""
        if name in self.tasks:
            raise ValueError(f"a background task named {name!r} exists already")
        self.tasks[name] = run


Setup = Callable[[Runtime], None]


def service_lifespan(
    settings: Settings, audience: str, collections: Collections, setup: Setup
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Lifespan: connect, create the indexes of the service's `collections`, start producer,
    the relay of its outbox collections and the consumers `setup` declares; on shutdown stop
    them in reverse, consumers first (no work is half done)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings, collections)
        await store.ensure_indexes()
        producer = make_producer(settings)
        await producer.start()
        relay = relay_for(store, producer)
        runtime = Runtime(settings, store, producer, relay)
        setup(runtime)
        verifier = TokenVerifier(settings, audience)
        app.state.runtime = runtime
        install_token_verifier(app, verifier)
        kafka_probe = asyncio.create_task(runtime.kafka.run(), name="kafka-health")
        await relay.start()
        for consumer in runtime.consumers:
            await consumer.start()
        tasks = [asyncio.create_task(run(), name=name) for name, run in runtime.tasks.items()]
        tasks.append(kafka_probe)
        try:
            yield
        finally:
            for task in tasks:
                await cancel_and_wait(task)
            for consumer in runtime.consumers:
                await consumer.stop()
            await relay.stop()
            await producer.stop()
            await verifier.aclose()
            await store.close()

    return lifespan


def add_health(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        stopped = [c.group for c in runtime.consumers if not c.healthy()]
        return await health_answer(runtime.store, runtime.kafka, stopped)


async def health_answer(
    store: Store, kafka: KafkaHealth | None, stopped: Sequence[str], **ok: Any
) -> JSONResponse:
    """`/healthz`'s answer (see the module): 200 with `ok`'s fields when everything answers,
    else 503 naming what does not. `kafka` None: the process does not use Kafka."""
    down: dict[str, Any] = {}
    if kafka is not None and not kafka.reachable:
        down["kafka"] = "unreachable"
    try:
        async with asyncio.timeout(HEALTH_PING_TIMEOUT):
            await store.db.command("ping")
    except Exception:  # noqa: BLE001 - whatever went wrong, the store did not answer
        down["mongodb"] = "unreachable"
    if stopped:
        down["stopped"] = list(stopped)
    if down:
        return JSONResponse({"status": "degraded", **down}, status_code=503)
    return JSONResponse({"status": "ok", **ok})


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def serve(app: FastAPI, service: str, port: int, host: str) -> None:
    """Run uvicorn with no access log and our logging policy for every logger."""
    configure_logging(service)
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, server_header=False)
