"""`hotline bench digests`: what a buyer's pull costs with a long history of digests.

Everything runs for real on this machine: its own nx-27017 (in a temporary data directory,
on a free port) unless `--mongo-url`, notify's collections and indexes, and notify's digest
route (`GET /api/digests`) called in-process through its ASGI app (FastAPI routing, query
validation, the store read, the response as served; no TCP and no token check: the buyer
is given). `--digests` digests of one buyer are made first, one case each with a sealed
content envelope, signed and chained as notify makes them (`build_digest`) and inserted in
batches; a sample is also issued one by one through the real `Issuer.issue`, for its rate.
The digests are marked handed out already: what is measured is a pull of digests whose
disclosures are in the log (the first hand-out of each adds one disclosure per envelope,
a Kafka round trip each, which the audit benchmark's figures cover).

Figures (median of `--rounds`): a pull of the first page (since=0) and of the last page
(since = digests - page), at 50 and 200 per page; beside each, the anchor: a raw indexed
find of the same documents with the same projection (PyMongo straight to the store, no
route); and, for scale, reading the whole history in one find (what every pull cost before
the cursor).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import get_args

import click
import httpx
from fastapi import FastAPI

from hotline.notify.collections import COLLECTIONS as NOTIFY
from hotline.notify.collections import NOTIFY_BUYER_STATE, NOTIFY_DIGESTS, NOTIFY_ITEMS
from hotline.notify.digests import SERVED, digests
from hotline.notify.issuance import Issuer, after, build_digest, slot
from hotline.shared.auth import Principal
from hotline.shared.bus import make_producer
from hotline.shared.clock import ManualClock, hour_of
from hotline.shared.config import Settings
from hotline.shared.deps import BuyerDep, RuntimeDep
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import ReportSubmitted
from hotline.shared.keys import generate_keypair, key_id
from hotline.shared.outbox import relay_for
from hotline.shared.reports import routing_metadata
from hotline.shared.service import Runtime
from hotline.shared.store import Document, Store
from hotline.shared.tlog.note import Ed25519Signer

from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import median_ms, say, workspace

BUYER = "bench-buyer"
FACTORY = "F-001"
SEED_CHUNK = 1_000
ISSUED_ONE_BY_ONE = 200
PAGES = (50, 200)


@click.command("digests")
@click.option("--digests", "count", default=10_000, show_default=True, help="Digests of one buyer.")
@click.option("--rounds", default=20, show_default=True, help="Pulls of each page (the median).")
@click.option("--mongo-url", help="Use this MongoDB wire server instead of starting nx-27017.")
@JSON_OPTION
def bench_digests(count: int, rounds: int, mongo_url: str | None, as_json: bool) -> None:
    """Pull cost (first and last page) with many digests for one buyer, beside a raw find."""
    if count < max(PAGES) + ISSUED_ONE_BY_ONE:
        least = max(PAGES) + ISSUED_ONE_BY_ONE
        raise click.BadParameter(f"at least {least}", param_hint="--digests")
    if rounds < 1:
        raise click.BadParameter("1 or more", param_hint="--rounds")
    with workspace(mongo_url) as settings:
        asyncio.run(_measure(settings, count, rounds, as_json))


async def _measure(settings: Settings, count: int, rounds: int, as_json: bool) -> None:
    store = Store(settings, NOTIFY)
    await store.ensure_indexes()
    try:
        signer = Ed25519Signer.generate("bench.invalid/digests")
        clock = ManualClock(datetime(2026, 3, 4, 10, 0, tzinfo=UTC))
        seeding = await _seed(store, signer, clock, count - ISSUED_ONE_BY_ONE)
        issuing = await _issue_one_by_one(store, signer, clock, ISSUED_ONE_BY_ONE)
        # Only those the Issuer made are still undisclosed: nx-27017 writes each document of
        # an update_many as a transaction of its own (100,000 took longer than a socket timeout).
        await store.db[NOTIFY_DIGESTS.name].update_many(
            {"disclosed": False}, {"$set": {"disclosed": True}}
        )
        body_bytes = await _body_size(store)
        extra = {"digests": count, "body_bytes": body_bytes}
        figures = [
            Figure(
                f"digests issued through Issuer.issue one by one ({ISSUED_ONE_BY_ONE})",
                round(issuing, 1),
                "digests/s",
                "digests built and inserted in batches",
                round(seeding, 1),
                "higher",
                extra,
            )
        ]
        pull = await _route(settings, store)
        raw = "a raw indexed find of the same documents"
        for page in PAGES:
            last = count - page
            first_ms = await median_ms(rounds, partial(pull, 0, page))
            last_ms = await median_ms(rounds, partial(pull, last, page))
            raw_first = await median_ms(rounds, partial(_raw_find, store, 0, page))
            raw_last = await median_ms(rounds, partial(_raw_find, store, last, page))
            figures += [
                Figure(
                    f"pull of {page} per page, first page",
                    round(first_ms, 2),
                    "ms",
                    raw,
                    round(raw_first, 2),
                    "lower",
                    extra,
                ),
                Figure(
                    f"pull of {page} per page, last page",
                    round(last_ms, 2),
                    "ms",
                    raw,
                    round(raw_last, 2),
                    "lower",
                    extra,
                ),
            ]
        whole = await median_ms(3, partial(_raw_find, store, 0, count + 1))
        last_pull = figures[2]  # the last page of PAGES[0] per page
        figures.append(
            Figure(
                "for scale, the whole history in one raw find",
                round(whole, 1),
                "ms",
                f"pull of {PAGES[0]} per page, last page",
                last_pull.value,
                "lower",
                extra,
            )
        )
        if as_json:
            for figure in figures:
                echo_figure(figure, as_json)
        else:
            _print_lines(figures, count, body_bytes)
    finally:
        await store.drop_databases()
        await store.close()


def _report(case_id: str, public: bytes) -> ReportSubmitted:
    routing = routing_metadata(FACTORY, ["wages"], False, "en")
    content = seal_envelope(
        b"wages withheld for three months " * 4,
        case_id=case_id,
        kind="content",
        routing=routing,
        recipients={key_id(public): public},
    )
    return ReportSubmitted(
        **routing, channel="web", server_encrypted=False, content=content, identity=None
    )


def _record(n: int, case_id: str, report: ReportSubmitted, hour: str) -> Document:
    return {
        "_id": f"{BUYER}:{case_id}",
        "buyer": BUYER,
        "n": n,
        "slot": slot(BUYER, n),
        "case_id": case_id,
        "change": "new",
        "factory": report.factory,
        "categories": report.categories,
        "urgent": report.urgent,
        "language": report.language,
        "received": hour,
        "content": report.content.model_dump(mode="json"),
        "attachments": [],
    }


async def _seed(store: Store, signer: Ed25519Signer, clock: ManualClock, count: int) -> float:
    """`count` records and digests (one record each) of BUYER, chained as issued; the rate."""
    say(f"making {count} digests")
    _, public = generate_keypair()
    hour = hour_of(clock.now())
    state: Document = {"_id": BUYER, "seq": 0, "last_hash": None, "upto": 0, "version": 1}
    started = time.perf_counter()
    for first in range(0, count, SEED_CHUNK):
        records, documents = [], []
        for n in range(first + 1, min(first + SEED_CHUNK, count) + 1):
            case_id = f"case-{n:08d}"
            record = _record(n, case_id, _report(case_id, public), hour)
            document, _ = build_digest(signer, state, hour, "schedule", [record], {})
            # As if its hand-out were in the audit log already: pulls serve disclosed digests.
            documents.append(
                {**document, "disclosed": True, "version": 1, "outbox": {}, "outbox_pending": 0}
            )
            records.append(record)
            state = {**state, "seq": n, "last_hash": document["digest_hash"], "upto": n}
        await store.db[NOTIFY_ITEMS.name].insert_many(records)
        await store.db[NOTIFY_DIGESTS.name].insert_many(documents)
    await store.db[NOTIFY_BUYER_STATE.name].insert_one({**state, "scheduled": hour})
    return count / (time.perf_counter() - started)


async def _issue_one_by_one(
    store: Store, signer: Ed25519Signer, clock: ManualClock, count: int
) -> float:
    """`count` more digests, each recorded and issued by the real Issuer; the rate."""
    issuer = Issuer(store, signer, clock)
    _, public = generate_keypair()
    buyer = {"_id": BUYER, "schedule": "daily"}
    started = time.perf_counter()
    for number in range(count):
        case_id = f"issued-{number:08d}"
        await issuer.record_report(buyer, case_id, _report(case_id, public), hour_of(clock.now()))
        if await issuer.issue(BUYER, "on-request") is None:
            raise click.ClickException("the issuer issued nothing for a pending record")
    return count / (time.perf_counter() - started)


async def _body_size(store: Store) -> int:
    found = await store.db[NOTIFY_DIGESTS.name].find_one(after(BUYER, 0), {"body": 1})
    return len(str(found["body"]).encode()) if found else 0


async def _raw_find(store: Store, since: int, limit: int) -> int:
    found = (
        store.db[NOTIFY_DIGESTS.name]
        .find(after(BUYER, since), SERVED)
        .sort("slot", 1)
        .limit(limit + 1)
    )
    return len(await found.to_list(None))


async def _route(settings: Settings, store: Store) -> Callable[[int, int], Awaitable[int]]:
    """A pull through notify's digest route, in-process, as the buyer."""
    producer = make_producer(settings)  # never started: every digest was handed out already
    runtime = Runtime(settings, store, producer, relay_for(store, producer))
    app = FastAPI()
    app.include_router(digests)
    runtime_dependency = get_args(RuntimeDep)[1].dependency
    buyer_dependency = get_args(BuyerDep)[1].dependency
    buyer = Principal(subject="bench", roles=frozenset({"buyer"}), org=BUYER, client=None)
    app.dependency_overrides[runtime_dependency] = lambda: runtime
    app.dependency_overrides[buyer_dependency] = lambda: buyer
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify")

    async def pull(since: int, limit: int) -> int:
        response = await client.get("/api/digests", params={"since": since, "limit": limit})
        if response.status_code != 200:
            raise click.ClickException(f"the pull failed: {response.status_code}")
        return len(response.content)  # read whole, not parsed: the client's cost is not in it

    return pull


def _print_lines(figures: list[Figure], count: int, body_bytes: int) -> None:
    """The figures for a person, as the bench has always said them."""
    issuing, *pulls, whole = figures
    click.echo(f"digests of one buyer: {count} (one case each, bodies of {body_bytes} bytes)")
    click.echo(
        f"making them: {issuing.anchor_value:,.0f} digests/s built and inserted in batches; "
        f"{issuing.value:,.0f} digests/s through Issuer.issue one by one ({ISSUED_ONE_BY_ONE})"
    )
    for page, first, last in zip(PAGES, pulls[::2], pulls[1::2], strict=True):
        click.echo(
            f"pull of {page} per page: first page {first.value:.1f} ms, last page "
            f"{last.value:.1f} ms (anchor, a raw indexed find of the same documents: "
            f"{first.anchor_value:.1f} ms, {last.anchor_value:.1f} ms)"
        )
    click.echo(f"for scale, the whole history in one raw find: {whole.value:.0f} ms")
