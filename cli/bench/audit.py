"""`hotline bench audit`: how fast the audit log sequences, serves, proves and verifies.

Everything runs for real on this machine: its own nx-27017 (in a temporary data directory,
on a free port) unless `--mongo-url` is given, the real `Sequencer`, the real audit-log
service (`python -m hotline.audit_log --no-consume`, on a free port) and the auditor's own
code over HTTP (`hotline audit verify`'s fetcher and checks). Nothing else is started.

Measured:
- sequencing: events/s through `Sequencer.sequence` (one event per write) and
  `Sequencer.sequence_many` (the consumer's batches of 500);
- for each log size: the time the service takes to integrate the log; tile-serving rate
  (full level-0 tiles, 4 keep-alive clients); a client-side inclusion proof from tiles,
  with the tiles in hand and including their download; the full verification; and a
  restart of the service, which re-checks its whole store before serving.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import click
import httpx

from hotline.audit_log import storage as audit_storage
from hotline.audit_log.sequencer import Sequencer
from hotline.shared.audit.verdict import audit_log
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import (
    CaseTriaged,
    DigestIssued,
    EnvelopeClass,
    EnvelopeDisclosed,
    Event,
    KeyRegistered,
    OrgKind,
    Principal,
    RegistryChanged,
    ReportSubmitted,
    new_event,
)
from hotline.shared.keys import b64encode, generate_keypair, key_id
from hotline.shared.roles import Role
from hotline.shared.store import Store
from hotline.shared.tlog.checkpoint import parse_checkpoint
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.note import Ed25519Signer, parse_note
from hotline.shared.tlog.proof import inclusion_nodes, inclusion_proof
from hotline.shared.tlog.tiles import (
    Tile,
    hashes_from_tiles,
    tile_path,
    tile_width,
    tiles_for_nodes,
)
from hotline.shared.tlog.verify import verify_inclusion

from ..audit import LogClient
from ..engines.process import ManagedProcess, free_port, http_ready
from ..http import tls
from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say, workspace

DEFAULT_SIZES = "10000,100000,1000000"
SEQUENCED = 20_000  # events sequenced in polls for the sequencing figures; a tenth one by one
POLL = 500  # the audit consumer's poll size
SEED_CHUNK = 5_000
TILE_REQUESTS = 2_000
PROOFS = 200


@dataclass
class Row:
    size: int
    seed_rate: float = 0.0
    integrate_s: float = 0.0
    tiles_per_s: float = 0.0
    proof_ms: float = 0.0
    proof_fetch_ms: float = 0.0
    verify_s: float = 0.0
    restart_s: float = 0.0


@click.command("audit")
@click.option(
    "--sizes", default=DEFAULT_SIZES, show_default=True, help="Log sizes, comma-separated."
)
@click.option(
    "--sequenced",
    type=click.IntRange(min=10),
    default=SEQUENCED,
    show_default=True,
    help="Events sequenced in polls for the sequencing figures (a tenth more one by one).",
)
@click.option(
    "--tile-requests",
    type=click.IntRange(min=1),
    default=TILE_REQUESTS,
    show_default=True,
    help="Tile requests timed per size (4 clients).",
)
@click.option(
    "--proofs",
    type=click.IntRange(min=1),
    default=PROOFS,
    show_default=True,
    help="Inclusion proofs timed per size (the median is shown).",
)
@click.option("--mongo-url", help="Use this MongoDB wire server instead of starting nx-27017.")
@JSON_OPTION
def bench_audit(
    sizes: str,
    sequenced: int,
    tile_requests: int,
    proofs: int,
    mongo_url: str | None,
    as_json: bool,
) -> None:
    """Sequencing rate, tile-serving rate, proof time and full verification time.

    The default sizes take about five minutes on two cores; `--sizes 10000` is a quick look.
    """
    try:
        wanted = sorted({int(s) for s in sizes.split(",") if s.strip()})
    except ValueError:
        raise click.BadParameter("comma-separated whole numbers", param_hint="--sizes") from None
    if not wanted or min(wanted) < 1:
        raise click.BadParameter("at least one size, each 1 or more", param_hint="--sizes")
    with workspace(mongo_url) as settings:
        single, batched = asyncio.run(_sequencing_rates(settings, sequenced))
        rows = [_measure_size(settings, size, tile_requests, proofs) for size in wanted]
    if as_json:
        for figure in _figures(single, batched, rows):
            echo_figure(figure, as_json)
    else:
        _print_table(single, batched, rows)


# --- events ---------------------------------------------------------------------------------


class Workload:
    """Realistic events: a registry, then cases (report, triage, digest, two disclosures)."""

    def __init__(self) -> None:
        _, self.operator = generate_keypair()  # only the public keys are needed
        _, self.buyer = generate_keypair()
        self.operator_id, self.buyer_id = key_id(self.operator), key_id(self.buyer)
        routing = {"factory": "F-001", "categories": ["safety"], "urgent": False, "language": "en"}
        both = {self.operator_id: self.operator, self.buyer_id: self.buyer}
        self.content = seal_envelope(
            b"x" * 200, case_id="bench", kind="content", routing=routing, recipients=both
        )
        self.identity = seal_envelope(
            b"y" * 50,
            case_id="bench",
            kind="identity",
            routing=routing,
            recipients={self.operator_id: self.operator},
        )
        self.digests = 0  # buyer-1's digests so far: each case's is the next in its chain

    def prologue(self) -> list[Event]:
        return [
            self._key(self.operator_id, self.operator, "hotline-operator", "operator"),
            new_event(
                "F-001",
                RegistryChanged(change="factory-added", factory="F-001"),
            ),
            self._key(self.buyer_id, self.buyer, "buyer-1", "buyer"),
        ]

    def _key(self, kid: str, public: bytes, org: str, kind: OrgKind) -> Event:
        data = KeyRegistered(key_id=kid, public_key=b64encode(public), org=org, org_kind=kind)
        return new_event(kid, data)

    def events(self, count: int) -> Iterator[Event]:
        """`count` events: the prologue, then cases of five events each."""
        produced = 0
        for event in self.prologue():
            if produced == count:
                return
            yield event
            produced += 1
        case = 0
        while True:
            for event in self._case(f"case-{case:08d}"):
                if produced == count:
                    return
                yield event
                produced += 1
            case += 1

    def _case(self, case_id: str) -> list[Event]:
        report = ReportSubmitted(
            factory="F-001",
            categories=["safety"],
            urgent=False,
            language="en",
            channel="web",
            server_encrypted=False,
            content=self.content,
            identity=self.identity,
        )
        due = "2026-01-01T04:00:00Z"
        triaged = CaseTriaged(severity="normal", due=due, categories=["safety"], factory="F-001")
        digest = DigestIssued(
            buyer="buyer-1",
            seq=self.digests + 1,
            digest_hash="ab" * 32,
            previous=None,
            cases=[case_id],
        )
        self.digests += 1
        operator = Principal(role=Role.OPERATOR, org="hotline-operator")
        buyer = Principal(role=Role.BUYER, org="buyer-1")
        return [
            new_event(case_id, report),
            new_event(case_id, triaged),
            new_event(f"buyer-1:{digest.seq}", digest),
            new_event(case_id, self._disclosure(operator, "identity")),
            new_event(case_id, self._disclosure(buyer, "content")),
        ]

    def _disclosure(self, principal: Principal, envelope_class: EnvelopeClass) -> EnvelopeDisclosed:
        recipients = [self.operator_id] if envelope_class == "identity" else [self.buyer_id]
        return EnvelopeDisclosed(
            principal=principal,
            envelope_class=envelope_class,
            envelope_hash="cd" * 32,
            recipient_key_ids=recipients,
        )


# --- sequencing -----------------------------------------------------------------------------


async def _open_store(settings: Settings, database: str) -> tuple[Store, Any]:
    store = Store(settings.model_copy(update={"mongo_db": database}))
    await audit_storage.ensure_indexes(store)
    return store, Sequencer(store)


async def _sequencing_rates(settings: Settings, sequenced: int) -> tuple[float, float]:
    """Events/s through `sequence` (`sequenced` / 10 one by one) and `sequence_many`
    (`sequenced` in polls of 500)."""
    workload = Workload()
    store, sequencer = await _open_store(settings, "bench_sequencing")
    singly = sequenced // 10
    try:
        events = list(workload.events(singly + sequenced))
        say(f"sequencing {singly} events one by one, {sequenced} in polls of {POLL}")
        started = time.perf_counter()
        for event in events[:singly]:
            await sequencer.sequence(event)
        single = singly / (time.perf_counter() - started)
        batched_events = events[singly:]
        started = time.perf_counter()
        for first in range(0, len(batched_events), POLL):
            await sequencer.sequence_many(batched_events[first : first + POLL])
        batched = len(batched_events) / (time.perf_counter() - started)
        return single, batched
    finally:
        await store.drop_databases()
        await store.close()


async def _seed(settings: Settings, database: str, size: int) -> float:
    """Sequence `size` events into `database`; return the rate (events/s)."""
    store, sequencer = await _open_store(settings, database)
    try:
        events = Workload().events(size)
        started = time.perf_counter()
        chunk: list[Event] = []
        for event in events:
            chunk.append(event)
            if len(chunk) == SEED_CHUNK:
                await sequencer.sequence_many(chunk)
                chunk = []
        if chunk:
            await sequencer.sequence_many(chunk)
        return size / (time.perf_counter() - started)
    finally:
        await store.close()


# --- one log size ---------------------------------------------------------------------------


def _measure_size(settings: Settings, size: int, tile_requests: int, proofs: int) -> Row:
    row = Row(size)
    database = f"bench_{size}"
    say(f"[{size:,}] sequencing the log")
    row.seed_rate = asyncio.run(_seed(settings, database, size))
    seed = secrets.token_hex(32)
    port = free_port()
    service = ManagedProcess(
        name="audit-log",
        command=[sys.executable, "-m", "hotline.audit_log", "--no-consume"],
        log_path=settings.logs_dir / f"audit-log-{size}.log",
        env={
            "HOTLINE_DATA": str(settings.data),
            "HOTLINE_MONGO_URL": settings.mongo_url,
            "HOTLINE_MONGO_DB": database,
            "HOTLINE_AUDIT_PORT": str(port),
            "HOTLINE_SIGNING_KEY": seed,
            "HOTLINE_AUDIT_CHECKPOINT_INTERVAL": "0.2",
        },
    )
    url = f"http://{settings.host}:{port}"
    signer = Ed25519Signer(settings.audit_origin, bytes.fromhex(seed))
    started = time.perf_counter()
    service.start()
    try:
        service.wait_until(http_ready(f"{url}/healthz"), timeout=120)
        service.wait_until(lambda: _checkpoint_size(url) == size, timeout=3600)
        row.integrate_s = time.perf_counter() - started
        say(f"[{size:,}] integrated in {row.integrate_s:.1f} s; serving tiles")
        row.tiles_per_s = _tile_rate(url, size, tile_requests)
        row.proof_ms, row.proof_fetch_ms = _proof_times(url, size, proofs)
        say(f"[{size:,}] verifying the whole log")
        row.verify_s = _verify_time(url, signer)
        service.stop()
        say(f"[{size:,}] restarting the service (it checks its store first)")
        started = time.perf_counter()
        service.start()
        service.wait_until(http_ready(f"{url}/healthz"), timeout=3600)
        row.restart_s = time.perf_counter() - started
    finally:
        service.stop()
    return row


def _checkpoint_size(url: str) -> int:
    try:
        note = httpx.get(f"{url}/checkpoint", timeout=5, verify=tls()).content
        return parse_checkpoint(parse_note(note)[0]).size
    except (httpx.HTTPError, TlogError):
        return -1  # not up, or no checkpoint yet


def _tile_rate(url: str, size: int, requests: int) -> float:
    """Requests/s for full level-0 tiles (partial when the log has none), 4 clients."""
    full = size // 256
    tiles = [Tile(0, n) for n in range(full)] or [Tile(0, 0, tile_width(0, 0, size))]
    paths = [tile_path(random.choice(tiles)) for _ in range(requests)]
    client = LogClient(url)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            served = list(pool.map(client.get, paths))
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    if any(data is None for data in served):
        raise click.ClickException("the service did not serve every tile")
    return requests / elapsed


def _proof_times(url: str, size: int, proofs: int) -> tuple[float, float]:
    """Median ms of an inclusion proof from tiles: tiles in hand, and including fetching."""
    client = LogClient(url)
    try:
        root = parse_checkpoint(parse_note(client.checkpoint())[0]).root_hash
        leaves: dict[int, list[bytes]] = {}
        times = [
            _one_proof(client, leaves, index, size, root)
            for index in random.sample(range(size), min(proofs, size))
        ]
    finally:
        client.close()
    in_hand = statistics.median(t[0] for t in times)
    with_fetch = statistics.median(t[1] for t in times)
    return in_hand * 1000, with_fetch * 1000


def _one_proof(
    client: LogClient, leaves: dict[int, list[bytes]], index: int, size: int, root: bytes
) -> tuple[float, float]:
    """(seconds computing and verifying the proof, seconds including fetching its tiles)."""
    leaf = _leaf(client, leaves, index, size)
    started = time.perf_counter()
    needed = tiles_for_nodes(inclusion_nodes(index, size).ids, size)
    fetched_tiles = client.fetch_many([tile_path(tile) for tile in needed])  # in parallel
    tiles = {tile: data or b"" for tile, data in zip(needed, fetched_tiles, strict=True)}
    fetched = time.perf_counter()
    proof = inclusion_proof(index, size, lambda nodes: hashes_from_tiles(nodes, tiles, size))
    verify_inclusion(index, size, leaf, proof, root)
    done = time.perf_counter()
    return done - fetched, done - started


def _leaf(client: LogClient, cache: dict[int, list[bytes]], index: int, size: int) -> bytes:
    """The leaf hash of entry `index`, from its level-0 tile (not timed as proof work)."""
    tile = Tile(0, index // 256, tile_width(0, index // 256, size))
    if tile.index not in cache:
        data = client.get(tile_path(tile)) or b""
        cache[tile.index] = [data[i : i + 32] for i in range(0, len(data), 32)]
    return cache[tile.index][index % 256]


def _verify_time(url: str, signer: Ed25519Signer) -> float:
    """Seconds for the auditor's full verification (what `hotline audit verify` runs)."""
    client = LogClient(url)
    try:
        started = time.perf_counter()
        verdict, _ = audit_log(
            note=client.checkpoint(), log_key=signer.verifier(), fetch_many=client.fetch_many
        )
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    if not verdict.ok:
        raise click.ClickException(f"verification failed: {verdict.failures[0]}")
    return elapsed


# --- the table ------------------------------------------------------------------------------


def _print_table(single: float, batched: float, rows: list[Row]) -> None:
    click.echo(f"machine: {os.cpu_count()} cores; MongoDB wire: nx-27017 (SQLite)")
    click.echo(f"sequencing, one event per write  : {single:>8,.0f} events/s")
    click.echo(f"sequencing, batches of {POLL} (consumer): {batched:>8,.0f} events/s")
    header = (
        f"{'entries':>10} {'seq ev/s':>9} {'integrate':>10} {'tiles req/s':>12} "
        f"{'proof ms':>9} {'+fetch ms':>10} {'verify s':>9} {'us/entry':>9} {'restart':>8}"
    )
    click.echo(header)
    for row in rows:
        click.echo(
            f"{row.size:>10,} {row.seed_rate:>9,.0f} {row.integrate_s:>9.1f}s "
            f"{row.tiles_per_s:>12,.0f} {row.proof_ms:>9.3f} {row.proof_fetch_ms:>10.2f} "
            f"{row.verify_s:>9.2f} {row.verify_s / row.size * 1e6:>9.1f} {row.restart_s:>7.1f}s"
        )
    for before, after in zip(rows, rows[1:], strict=False):
        click.echo(
            f"growth {before.size:,} -> {after.size:,} entries (x{after.size / before.size:.0f}): "
            f"verification x{after.verify_s / before.verify_s:.1f} (linear would be "
            f"x{after.size / before.size:.0f}); proof x{after.proof_ms / before.proof_ms:.1f} "
            "(logarithmic: a proof grows by one tile level per x256 entries)"
        )


def _figures(single: float, batched: float, rows: list[Row]) -> list[Figure]:
    """The table's figures; each size's beside the same figure at the smallest size (how it
    grows: ratio 1 is flat per entry, or flat for rates and proofs)."""
    figures = [
        Figure(
            f"sequencing, batches of {POLL} (the consumer's)",
            round(batched),
            "events/s",
            "sequencing, one event per write",
            round(single),
            "higher",
        )
    ]
    first = rows[0]
    anchor = f"the same at {first.size:,} entries"

    def grown(name: str, row: Row, value: Callable[[Row], float], unit: str) -> Figure:
        better: Literal["higher", "lower"] = "higher" if unit.endswith("/s") else "lower"
        digits = 3 if unit == "ms" else 1
        return Figure(
            f"{name} at {row.size:,} entries",
            round(value(row), digits),
            unit,
            anchor,
            round(value(first), digits),
            better,
            {"entries": row.size},
        )

    for row in rows:
        figures += [
            grown("tiles served", row, lambda r: r.tiles_per_s, "requests/s"),
            grown("inclusion proof, tiles in hand", row, lambda r: r.proof_ms, "ms"),
            grown("inclusion proof, fetching its tiles", row, lambda r: r.proof_fetch_ms, "ms"),
            grown("integration per entry", row, lambda r: r.integrate_s * 1e6 / r.size, "µs"),
            grown("full verification per entry", row, lambda r: r.verify_s * 1e6 / r.size, "µs"),
            grown(
                "restart (store check) per entry", row, lambda r: r.restart_s * 1e6 / r.size, "µs"
            ),
        ]
    return figures
