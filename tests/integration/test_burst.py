"""The burst (issue 20): reports from 200 clients at once, each client on one keep-alive
connection, into the session's running system. Every submission gets its 201 the first
time, no connection breaks, and afterwards every case is triaged once, announced once in
the audit log and brought once by the linked buyer's digests.

No retry is allowed. `POST /api/reports` has no busy limit (intake's 503 `busy` is the
no-JS queue's and the receipt lookups'), so a 503 here would be an error the issue's
"zero errors" forbids; and a retry with the same case id could hide a report that was
stored but answered badly (it would meet `case-exists`).

Reports are prepared before the first is sent, as `hotline submit` makes them (the
recipients read from intake, content and identity sealed to them, a challenge fetched and
solved at the session's difficulty), with one difference the server cannot see: the
receipt's lookup token and reply key are random rather than derived with Argon2id (64 MiB,
a fraction of a second each; intake stores only the token's hash and the public key).
Solving dominated the preparation at 16 bits (about 0.15 s a report on one core); the test
sessions run at 8 bits (tests/conftest.py), where it is a millisecond, so the suite's burst,
BURST_REPORTS from BURST_CLIENTS (one report a client, all at once), is bound by intake and
the consumers behind it.

The full 5,000 from 200 is the soak, selected by an environment variable (the project's
`-m unit` / `-m integration` selections would replace an `addopts` marker filter):

    HOTLINE_SOAK=1 .venv/bin/pytest -q -s -p no:cacheprovider \
        tests/integration/test_burst.py -m soak

5,000 solutions at 16 bits take longer than a challenge lives (10 minutes), so the soak skips,
saying so, on a session set above SOAK_MAX_BITS (HOTLINE_POW_DIFFICULTY; checking a
solution is one hash whatever its difficulty). Both print their
figures as JSON lines: the burst's (duration, rate, p50/p99 of a 201, failures) before
anything is asserted, the drain's at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from hotline.cli.http import tls
from hotline.notify.collections import NOTIFY_ITEMS
from hotline.notify.issuance import after
from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope, EnvelopeKind, seal_envelope
from hotline.shared.events import EventError, parse_event, topic_for
from hotline.shared.keys import b64decode_strict, b64encode, generate_keypair
from hotline.shared.pow import solve
from hotline.shared.reports import ProofOfWork, ReportCreate, routing_metadata
from hotline.shared.store import Databases
from hotline.triage.collections import TRIAGE_CASES
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_buyer_id, unique_factory_code
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import async_wait_for

pytestmark = pytest.mark.usefixtures("system")

BURST_REPORTS = 200
BURST_CLIENTS = 200
SOAK_REPORTS = 5_000
SOAK_CLIENTS = 200
SOAK_MAX_BITS = 12  # 5,000 solutions of 2^12 hashes: well inside a challenge's 10 minutes
# A 201 slower than this counts as a dropped connection (the issue measured p99 5.7 s at 50).
REQUEST_TIMEOUT_S = 120.0
CHALLENGE_FETCHERS = 8  # challenges fetched at once while preparing
CATEGORIES = ["wages", "hours"]
TEXT = "burst report {n}: the overtime of line 3 was not paid"
IDENTITY = "burst worker {n}, night shift"


@dataclass(frozen=True)
class World:
    """A factory of this module's own with an operator key and one linked buyer."""

    settings: Settings
    factory: str
    buyer: str
    buyer_user: str


@pytest.fixture(scope="module")
def world(test_settings: Settings) -> World:
    admin = AdminApi(test_settings)
    factory, buyer = unique_factory_code(), unique_buyer_id()
    admin.created("factories", {"code": factory, "name": "Burst Toys", "country": "CN"})
    admin.created("operator-keys", {"public_key": Party.new().public_b64})
    admin.created(
        "buyers", {"buyer_id": buyer, "name": "Burst", "public_key": Party.new().public_b64}
    )
    admin.created("links", {"buyer_id": buyer, "factory": factory})
    return World(test_settings, factory, buyer, add_user(test_settings, "buyer", buyer))


@pytest.mark.timeout(600)  # the session's engines may start first: 1-2 minutes
async def test_a_burst_from_200_clients_gets_a_201_each_and_every_case_arrives_once(
    world: World,
) -> None:
    await burst(world, BURST_REPORTS, BURST_CLIENTS, drain_timeout=240)


@pytest.mark.soak
@pytest.mark.timeout(3600)
@pytest.mark.skipif(os.environ.get("HOTLINE_SOAK") != "1", reason="the soak: HOTLINE_SOAK=1")
async def test_soak_5000_reports_from_200_clients(world: World) -> None:
    if world.settings.pow_difficulty > SOAK_MAX_BITS:
        pytest.skip(
            f"5,000 solutions at {world.settings.pow_difficulty} bits outlive their challenges:"
            f" run the soak with HOTLINE_POW_DIFFICULTY={SOAK_MAX_BITS} or less"
        )
    await burst(world, SOAK_REPORTS, SOAK_CLIENTS, drain_timeout=1800)


async def burst(world: World, reports: int, clients: int, *, drain_timeout: float) -> None:
    settings = world.settings
    # A calm intake first: challenges issued after other tests' submissions cost more bits.
    await async_wait_for(
        lambda: difficulty_is(settings, settings.pow_difficulty),
        timeout=120,
        what="intake's proof of work at its base difficulty",
    )
    started = time.monotonic()
    prepared = await prepare(settings, world.factory, reports)
    prepared_s = time.monotonic() - started
    log_start = await audit_log_end(settings)

    sent = await submit_all(settings.intake_url, prepared, clients)
    print(json.dumps(sent.figures(reports, clients, settings.pow_difficulty, prepared_s)))
    failures = Counter(sent.failures.values())
    assert not failures, f"{len(sent.failures)} of {reports} submissions failed: {failures}"
    cases = {report.case_id for report in prepared}
    assert set(sent.accepted) == cases

    # Polled from cursors, so each poll reads only what is new (the drain has the cores).
    async with LogReader(settings, log_start) as log, ItemReader(settings, world.buyer) as items:
        await async_wait_for(
            lambda: log.covers(cases),
            timeout=drain_timeout,
            what="every case's report.submitted and case.triaged in the audit log",
        )
        logged_s = time.monotonic() - sent.finished
        await async_wait_for(
            lambda: items.covers(cases),
            timeout=drain_timeout,
            what="a digest record of every case for the buyer",
        )
    recorded_s = time.monotonic() - sent.finished
    token = password_token(settings, world.buyer_user, world.buyer_user)
    digested = await async_wait_for(
        lambda: covering(new_in_digests(settings, token), cases),
        timeout=120,
        what="every case in the buyer's digests",
    )
    stored = await triage_cases(settings, world.factory)
    triaged = await triage_events(settings)

    assert stored == cases, "triage stored exactly the burst's cases at the factory"
    assert set(digested) == cases, "the buyer's digests bring the burst's cases and no other"
    for where, counts in (
        ("case.triaged events on Kafka", triaged),
        ("audit log's report.submitted entries", log.counts["report.submitted"]),
        ("audit log's case.triaged entries", log.counts["case.triaged"]),
        ("buyer's digests", digested),
    ):
        not_once = {case: counts[case] for case in cases if counts[case] != 1}
        assert not_once == {}, f"{len(not_once)} cases not exactly once in the {where}"

    print(
        json.dumps(
            {
                "figure": "drain after the last 201",
                "audit_log_s": round(logged_s, 1),
                "digest_records_s": round(recorded_s, 1),
            }
        )
    )
    # The burst raised the proof of work of everyone (by design); it falls back within its
    # minute, and the session's next tests are not charged for this one.
    await async_wait_for(
        lambda: difficulty_is(settings, settings.pow_difficulty),
        timeout=120,
        what="the proof of work back at its base difficulty after the burst",
    )


# --- preparing and sending -------------------------------------------------------------------


async def prepare(settings: Settings, factory: str, count: int) -> list[ReportCreate]:
    """`count` reports at `factory`, sealed to its recipients, their challenges solved."""
    async with httpx.AsyncClient(base_url=settings.intake_url, timeout=60, verify=tls()) as http:
        keys = (await http.get(f"/api/recipients/{factory}")).raise_for_status().json()
        fetching = asyncio.Semaphore(CHALLENGE_FETCHERS)

        async def challenge() -> dict[str, Any]:
            async with fetching:
                issued: dict[str, Any] = (
                    (await http.get("/api/challenge")).raise_for_status().json()
                )
                return issued

        issued = await asyncio.gather(*(challenge() for _ in range(count)))
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        solutions = await asyncio.to_thread(
            lambda: list(
                pool.map(
                    solve,
                    [c["challenge"] for c in issued],
                    [c["difficulty"] for c in issued],
                    chunksize=25,
                )
            )
        )
    content_keys = {kid: b64decode_strict(pub) for kid, pub in keys["content"].items()}
    identity_keys = {kid: b64decode_strict(pub) for kid, pub in keys["identity"].items()}
    return [
        sealed_report(factory, n, content_keys, identity_keys, challenge["challenge"], solution)
        for n, (challenge, solution) in enumerate(zip(issued, solutions, strict=True))
    ]


def sealed_report(
    factory: str,
    n: int,
    content_keys: dict[str, bytes],
    identity_keys: dict[str, bytes],
    challenge: str,
    solution: str,
) -> ReportCreate:
    case_id = str(uuid.uuid4())
    routing = routing_metadata(factory, CATEGORIES, False, "en")

    def sealed(kind: EnvelopeKind, text: str, recipients: dict[str, bytes]) -> Envelope:
        return seal_envelope(
            text.encode(), case_id=case_id, kind=kind, routing=routing, recipients=recipients
        )

    return ReportCreate(
        case_id=case_id,
        factory=factory,
        categories=CATEGORIES,
        urgent=False,
        language="en",
        channel="phone",
        lookup_token=secrets.token_hex(32),  # see the module: random, not Argon2id-derived
        reply_key=b64encode(generate_keypair()[1]),
        content=sealed("content", TEXT.format(n=n), content_keys),
        identity=sealed("identity", IDENTITY.format(n=n), identity_keys),
        pow=ProofOfWork(challenge=challenge, solution=solution),
    )


@dataclass
class Sent:
    accepted: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # case id -> what it got instead
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    finished: float = 0.0  # monotonic time of the last answer

    def figures(self, reports: int, clients: int, bits: int, prepared_s: float) -> dict[str, Any]:
        """What the burst measured, printed before anything is asserted."""
        ms = sorted(self.latencies_ms) or [0.0]
        return {
            "figure": "burst",
            "reports": reports,
            "clients": clients,
            "pow_bits": bits,
            "prepare_s": round(prepared_s, 1),
            "burst_s": round(self.duration_s, 2),
            "accepted_per_s": round(len(self.accepted) / self.duration_s, 1),
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1),
            "failures": len(self.failures),
        }


async def submit_all(intake_url: str, reports: list[ReportCreate], clients: int) -> Sent:
    """`clients` clients at once, each with one keep-alive connection, sending its share of
    `reports` one after the other."""
    sent = Sent()
    bodies = [report.model_dump(mode="json") for report in reports]
    # Plain HTTP, but each client would load the system's CA bundle again (20 ms of CPU).
    unused_tls = ssl.create_default_context()

    async def client(share: list[dict[str, Any]]) -> None:
        async with httpx.AsyncClient(
            base_url=intake_url,
            timeout=REQUEST_TIMEOUT_S,
            verify=unused_tls,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as http:
            for body in share:
                began = time.monotonic()
                try:
                    answer = await http.post("/api/reports", json=body)
                except httpx.TransportError as exc:  # a dropped connection, a timeout
                    sent.failures[body["case_id"]] = type(exc).__name__
                    continue
                if answer.status_code != 201:
                    code = answer.json().get("code") if answer.content else None
                    sent.failures[body["case_id"]] = f"{answer.status_code} {code}"
                    continue
                sent.latencies_ms.append((time.monotonic() - began) * 1000)
                sent.accepted.append(body["case_id"])

    began = time.monotonic()
    await asyncio.gather(*(client(bodies[k::clients]) for k in range(clients)))
    sent.finished = time.monotonic()
    sent.duration_s = sent.finished - began
    return sent


# --- counting what arrived ---------------------------------------------------------------


async def covering(counting: Awaitable[Counter[str]], wanted: set[str]) -> Counter[str] | None:
    """The counts once they count every one of `wanted` (for async_wait_for)."""
    counts = await counting
    return counts if wanted <= set(counts) else None


async def difficulty_is(settings: Settings, bits: int) -> bool:
    async with httpx.AsyncClient(base_url=settings.intake_url, timeout=30, verify=tls()) as http:
        issued = (await http.get("/api/challenge")).raise_for_status().json()
    return bool(issued["difficulty"] == bits)


async def triage_events(settings: Settings) -> Counter[str]:
    """How many distinct `case.triaged` events Kafka holds for each case (a relay may publish
    one event twice, at-least-once; a second triage would be a second event)."""
    triage_ids: dict[str, set[str]] = {}
    for raw in await records_on(settings, topic_for("case.triaged")):
        try:
            event = parse_event(raw)
        except EventError:
            continue
        triage_ids.setdefault(event.subject, set()).add(event.id)
    return Counter({case: len(ids) for case, ids in triage_ids.items()})


async def triage_cases(settings: Settings, factory: str) -> set[str]:
    """The case ids triage stored for `factory`."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        found = Databases(client, settings.mongo_db)[TRIAGE_CASES.name].find(
            {"factory": factory}, {"_id": 1}
        )
        return {doc["_id"] async for doc in found}
    finally:
        await client.close()


ENTRIES_PAGE = 1000
LOGGED_TYPES = ("report.submitted", "case.triaged")


async def audit_log_end(settings: Settings) -> int:
    """The index after the audit log's last sequenced entry."""
    start = 0
    async with httpx.AsyncClient(base_url=settings.audit_url, timeout=60, verify=tls()) as http:
        while True:
            page = await entries(http, start)
            if not page:
                return start
            start = page[-1]["index"] + 1


async def entries(http: httpx.AsyncClient, start: int) -> list[dict[str, Any]]:
    answer = await http.get("/api/entries", params={"start": start, "limit": ENTRIES_PAGE})
    page: list[dict[str, Any]] = answer.raise_for_status().json()
    return page


class LogReader:
    """The audit log's entries of LOGGED_TYPES per case, read on from where the last read
    stopped: up to the first index not visible yet (entries are sequenced without gaps)."""

    def __init__(self, settings: Settings, start: int) -> None:
        self.http = httpx.AsyncClient(base_url=settings.audit_url, timeout=60, verify=tls())
        self.next = start
        self.counts: dict[str, Counter[str]] = {kind: Counter() for kind in LOGGED_TYPES}

    async def __aenter__(self) -> LogReader:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def covers(self, cases: set[str]) -> bool:
        while True:
            page = await entries(self.http, self.next)
            for logged in page:
                if logged["index"] != self.next:
                    break  # sequenced but not visible yet: read again at the next poll
                entry = logged["entry"]
                if entry["type"] in self.counts:
                    self.counts[entry["type"]][entry["subject"]] += 1
                self.next += 1
            else:
                if len(page) == ENTRIES_PAGE:
                    continue
            break
        return all(cases <= set(counts) for counts in self.counts.values())


class ItemReader:
    """The cases of the buyer's "new" digest records in notify's store, read on by the
    buyer's record numbers (n = 1, 2, 3..., without gaps) up to the first not written yet."""

    def __init__(self, settings: Settings, buyer: str) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
        self.items = Databases(self.client, settings.mongo_db)[NOTIFY_ITEMS.name]
        self.buyer = buyer
        self.upto = 0
        self.cases: set[str] = set()

    async def __aenter__(self) -> ItemReader:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()

    async def covers(self, cases: set[str]) -> bool:
        found = self.items.find(
            after(self.buyer, self.upto), {"n": 1, "case_id": 1, "change": 1}
        ).sort("slot", 1)
        async for record in found:
            if record["n"] != self.upto + 1:
                break  # a record being written right now
            if record["change"] == "new":
                self.cases.add(record["case_id"])
            self.upto += 1
        return cases <= self.cases


async def new_in_digests(settings: Settings, token: str) -> Counter[str]:
    """How many times the buyer's digests bring each case as new, once everything pending is
    issued (POST /api/digests/issue until 204), read as the buyer's client reads them."""
    seen: Counter[str] = Counter()
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=settings.notify_url, headers=bearer, timeout=120, verify=tls()
    ) as http:
        issued = await http.post("/api/digests/issue")
        while issued.status_code == 201:  # one digest holds at most MAX_ITEMS records
            issued = await http.post("/api/digests/issue")
        assert issued.status_code == 204, issued.text
        since = 0
        while True:
            answer = (await http.get("/api/digests", params={"since": since})).raise_for_status()
            page = answer.json()
            for file in page["digests"]:
                seen.update(
                    item["case_id"] for item in file["digest"]["items"] if item["change"] == "new"
                )
            since = page["next"]
            if not page["more"]:
                return seen
