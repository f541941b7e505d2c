"""`hotline bench queue`: what a page of the operator's queue costs with many cases.

Everything runs for real on this machine: its own nx-27017 (in a temporary data directory,
on a free port) unless `--mongo-url`, triage's collections and indexes, and triage's queue
route (`GET /api/cases`) called in-process through its ASGI app (FastAPI routing, query
validation, the store read, the response as served; no TCP and no token check: the operator
is given). Case documents are made as triage's consumer makes them (routing metadata,
severity, due, status and the queue keys of `queue_keys`; small stand-in envelopes) and
inserted in batches, with deadlines spread over a year and a mix of severities and statuses.

Figures (median of `--rounds`), at each size of `--cases`: the first page and a page deep in
the queue (the page after the case at 90 % of it), for the whole queue and for
`status=received`; beside each, the anchor: a raw indexed find of the same documents with
the same projection (PyMongo straight to the store, no route); and, for scale, the queue as
it was read before the cursor (every case, sorted by due).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, get_args

import click
import httpx
from fastapi import FastAPI

from hotline.shared.auth import Principal
from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.deps import OperatorDep, RuntimeDep
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Document, Store
from hotline.triage.cases import (
    QUEUE_KEYS,
    SUMMARY_FIELDS,
    CaseSummary,
    cases,
    cursor_of,
    cursor_position,
    key_prefix,
    prefix_end,
    queue_keys,
)
from hotline.triage.collections import COLLECTIONS as TRIAGE
from hotline.triage.collections import TRIAGE_CASES

from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import median_ms, say, workspace

SIZES = (10_000, 100_000)
PAGE = 50
DEEP = 0.9  # where the deep page starts, as a share of the queue
SEED_CHUNK = 1_000
SEVERITIES = ("critical", "high", "high", "normal", "normal", "normal", "low")
STATUSES = ("received", "received", "acknowledged", "investigating", "resolved")
START = datetime(2026, 1, 1, tzinfo=UTC)
PROJECTION = {field: 1 for field in SUMMARY_FIELDS}
ENVELOPE = {"v": 1, "stand-in": "x" * 600}  # what a case carries besides its metadata


@click.command("queue")
@click.option(
    "--cases",
    "sizes",
    multiple=True,
    type=click.IntRange(min=2_000),
    default=SIZES,
    show_default=True,
    help="Cases in the queue (repeat for several sizes, ascending).",
)
@click.option("--rounds", default=20, show_default=True, help="Reads of each page (the median).")
@click.option("--mongo-url", help="Use this MongoDB wire server instead of starting nx-27017.")
@JSON_OPTION
def bench_queue(sizes: tuple[int, ...], rounds: int, mongo_url: str | None, as_json: bool) -> None:
    """Queue page cost (first and deep page) with many cases, beside a raw indexed find."""
    if list(sizes) != sorted(set(sizes)):
        raise click.BadParameter("ascending, each once", param_hint="--cases")
    if rounds < 1:
        raise click.BadParameter("1 or more", param_hint="--rounds")
    with workspace(mongo_url) as settings:
        asyncio.run(_measure(settings, sizes, rounds, as_json))


async def _measure(settings: Settings, sizes: tuple[int, ...], rounds: int, as_json: bool) -> None:
    store = Store(settings, TRIAGE)
    await store.ensure_indexes()
    try:
        page = await _route(settings, store)
        chance = random.Random(18)
        made = 0
        for size in sizes:
            rate = await _seed(store, chance, made, size)
            made = size
            if not as_json:
                click.echo(f"cases: {size} ({rate:,.0f} cases/s inserted in batches)")
            figures = []
            for label, filters, key in (
                ("whole queue", {}, "queue"),
                ("status=received", {"status": "received"}, "queue_status"),
            ):
                deep = await _cursor_at(store, key, filters, DEEP)
                # Both pages are full (a deep page of nothing would be fast and wrong).
                for after in (None, deep):
                    params = {**filters, **({"after": after} if after else {})}
                    if await page(params) != PAGE or await _raw(store, key, filters, after) <= PAGE:
                        raise click.ClickException(f"{label}: a page is not the queue's")
                first_ms = await median_ms(rounds, partial(page, filters))
                deep_ms = await median_ms(rounds, partial(page, {**filters, "after": deep}))
                raw_first = await median_ms(rounds, partial(_raw, store, key, filters, None))
                raw_deep = await median_ms(rounds, partial(_raw, store, key, filters, deep))
                figures += [
                    _figure(f"{label}, first page", size, first_ms, raw_first),
                    _figure(f"{label}, page at {DEEP:.0%}", size, deep_ms, raw_deep),
                ]
                if not as_json:
                    click.echo(
                        f"  {label}, {PAGE} per page: first page {first_ms:.1f} ms, page at "
                        f"{DEEP:.0%} {deep_ms:.1f} ms (anchor, a raw indexed find of the same "
                        f"documents: {raw_first:.1f} ms, {raw_deep:.1f} ms)"
                    )
            whole = await median_ms(3, partial(_everything, store))
            if as_json:
                for figure in figures:
                    echo_figure(figure, as_json)
                scale = Figure(
                    f"for scale, every case sorted by due in one find, at {size:,} cases",
                    round(whole, 1),
                    "ms",
                    f"whole queue, first page of {PAGE}",
                    figures[0].value,
                    "lower",
                    {"cases": size},
                )
                echo_figure(scale, as_json)
            else:
                click.echo(f"  for scale, every case sorted by due in one find: {whole:.0f} ms")
    finally:
        await store.drop_databases()
        await store.close()


def _figure(what: str, size: int, route_ms: float, raw_ms: float) -> Figure:
    return Figure(
        f"{what} of {PAGE}, at {size:,} cases",
        round(route_ms, 2),
        "ms",
        "a raw indexed find of the same documents",
        round(raw_ms, 2),
        "lower",
        {"cases": size},
    )


def _case(number: int, chance: random.Random) -> Document:
    received = START + timedelta(minutes=chance.randrange(365 * 24 * 60))
    severity = chance.choice(SEVERITIES)
    due = received + timedelta(hours={"critical": 4, "high": 24}.get(severity, 72))
    case: Document = {
        "_id": f"case-{number:08d}",
        "factory": f"F-{chance.randrange(1, 200):03d}",
        "categories": ["wages"],
        "urgent": severity == "critical",
        "language": "en",
        "channel": "web",
        "server_encrypted": False,
        "severity": severity,
        "reason": "bench",
        "escalated": severity == "critical",
        "due": due.isoformat().replace("+00:00", "Z"),
        "received": received.isoformat().replace("+00:00", "Z"),
        "status": chance.choice(STATUSES),
        "reply_key": None,
        "acknowledged": None,
        "feedback": None,
        "content": ENVELOPE,
        "identity": None,
        "version": 1,
        "outbox": {},
        "outbox_pending": 0,
    }
    case.update(queue_keys(case))
    return case


async def _seed(store: Store, chance: random.Random, first: int, upto: int) -> float:
    """Cases number `first`..`upto - 1`, in batches; the rate."""
    say(f"making cases {first}..{upto - 1}")
    started = time.perf_counter()
    for start in range(first, upto, SEED_CHUNK):
        batch = [_case(n, chance) for n in range(start, min(start + SEED_CHUNK, upto))]
        await store.db[TRIAGE_CASES.name].insert_many(batch)
    return (upto - first) / (time.perf_counter() - started)


def _range(key: str, filters: dict[str, str], after: str | None) -> dict[str, Any]:
    """The query of the route's page, written out (the anchor reads the same range)."""
    [queue_key] = [known for known in QUEUE_KEYS if known.field == key]
    prefix = key_prefix(queue_key, filters)
    lower = {"$gt": prefix + cursor_position(after)} if after else {"$gte": prefix}
    return {key: {**lower, "$lt": prefix_end(prefix)}, **filters}


async def _cursor_at(store: Store, key: str, filters: dict[str, str], share: float) -> str:
    """The route's cursor of the case at `share` of the filtered queue."""
    count = await store.db[TRIAGE_CASES.name].count_documents(filters)
    skipped = store.db[TRIAGE_CASES.name].find(_range(key, filters, None), {"due": 1})
    [case] = await skipped.sort(key, 1).skip(int(count * share)).limit(1).to_list(None)
    # Made by the route's own function, so that it is exactly the cursor the route hands out.
    summary = CaseSummary.model_construct(case_id=case["_id"], due=case["due"])
    return cursor_of(summary)


async def _raw(store: Store, key: str, filters: dict[str, str], after: str | None) -> int:
    found = store.db[TRIAGE_CASES.name].find(_range(key, filters, after), PROJECTION)
    return len(await found.sort(key, 1).limit(PAGE + 1).to_list(None))


async def _everything(store: Store) -> int:
    found = store.db[TRIAGE_CASES.name].find({}, PROJECTION).sort("due", 1)
    return len(await found.to_list(None))


async def _route(settings: Settings, store: Store) -> Callable[[dict[str, str]], Awaitable[int]]:
    """A page through triage's queue route, in-process, as an operator: its case count."""
    producer = make_producer(settings)  # never started: the queue publishes nothing
    runtime = Runtime(settings, store, producer, relay_for(store, producer))
    app = FastAPI()
    app.include_router(cases)
    runtime_dependency = get_args(RuntimeDep)[1].dependency
    operator_dependency = get_args(OperatorDep)[1].dependency
    operator = Principal(
        subject="bench", roles=frozenset({"triage-analyst"}), org="hotline", client=None
    )
    app.dependency_overrides[runtime_dependency] = lambda: runtime
    app.dependency_overrides[operator_dependency] = lambda: operator
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://triage")

    async def page(params: dict[str, str]) -> int:
        response = await client.get("/api/cases", params={**params, "limit": PAGE})
        if response.status_code != 200:
            raise click.ClickException(f"the page failed: {response.status_code}")
        return len(response.json()["cases"])

    return page
