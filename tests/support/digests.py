"""For tests of notify's digests: its issuer on a database of its own (with the registry as
triage writes it), events as its consumer receives them (parsed from their bytes), and a
buyer's digests as the API serves them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from hotline.cli.http import tls
from hotline.notify.collections import COLLECTIONS as NOTIFY_COLLECTIONS
from hotline.notify.issuance import Issuer
from hotline.shared import registry
from hotline.shared.clock import ManualClock
from hotline.shared.config import Settings
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import (
    CaseEscalated,
    CaseStatusChanged,
    CaseTriaged,
    Event,
    ReportSubmitted,
    Severity,
    new_event,
    parse_event,
)
from hotline.shared.reports import routing_metadata
from hotline.shared.store import Store
from hotline.shared.tlog.note import Ed25519Signer
from hotline.triage.collections import COLLECTIONS as TRIAGE_COLLECTIONS
from tests.support.registry import Party

IDENTITY_TEXT = b"Zhang, line 2"
# A Wednesday, mid-morning: the next daily boundary is 14 hours away, the weekly one 5 days.
START = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


@dataclass
class NotifyStore:
    """Notify's issuer on a database of its own, its clock and signing key, and on the same
    database the registry as triage writes it."""

    settings: Settings
    issuer: Issuer
    registry: Store
    clock: ManualClock
    signer: Ed25519Signer
    others: list[Store] = field(default_factory=list)

    @property
    def items(self) -> Any:
        return self.issuer.store.db.notify_items

    @property
    def digests(self) -> Any:
        return self.issuer.store.db.notify_digests

    async def buyer(self, buyer_id: str, *factories: str) -> Party:
        party = Party.new()
        await registry.add_buyer(self.registry, buyer_id, buyer_id.title(), party.public_b64)
        for factory in factories:
            await registry.link(self.registry, buyer_id, factory)
        return party

    def another_process(self) -> Issuer:
        """An issuer with a connection of its own to the same database, as a second notify
        process has (same key and clock)."""
        store = Store(self.settings, NOTIFY_COLLECTIONS)
        self.others.append(store)
        return Issuer(store, self.signer, self.clock)


@asynccontextmanager
async def notify_store(test_settings: Settings) -> AsyncIterator[NotifyStore]:
    settings = test_settings.model_copy(update={"mongo_db": f"notify_{uuid.uuid4().hex[:12]}"})
    store = Store(settings, NOTIFY_COLLECTIONS)
    registry_store = Store(settings, TRIAGE_COLLECTIONS)
    await store.ensure_indexes()
    await registry_store.ensure_indexes()
    clock = ManualClock(START)
    signer = Ed25519Signer.generate("test.invalid/digests")
    setting = NotifyStore(settings, Issuer(store, signer, clock), registry_store, clock, signer)
    try:
        yield setting
    finally:
        await store.drop_databases()
        for other in setting.others:
            await other.close()
        await registry_store.close()
        await store.close()


def report_event(
    factory: str,
    sealed_to: dict[str, Party],
    *,
    categories: list[str] | None = None,
    urgent: bool = False,
    text: bytes = b"wages withheld for three months",
) -> Event:
    """A `report.submitted` event whose content is sealed to every party of `sealed_to`
    and whose identity to `sealed_to["operator"]` only."""
    case_id = str(uuid.uuid4())
    meta = routing_metadata(factory, categories or ["wages"], urgent, "zh")
    content = seal_envelope(
        text,
        case_id=case_id,
        kind="content",
        routing=meta,
        recipients={party.key_id: party.public for party in sealed_to.values()},
    )
    identity = seal_envelope(
        IDENTITY_TEXT,
        case_id=case_id,
        kind="identity",
        routing=meta,
        recipients={sealed_to["operator"].key_id: sealed_to["operator"].public},
    )
    data = ReportSubmitted(
        **meta, channel="phone", server_encrypted=False, content=content, identity=identity
    )
    return parse_event(new_event(case_id, data).to_bytes())


def triaged_event(report: Event, severity: Severity, due: str = "2026-03-04T14:00:00Z") -> Event:
    data = CaseTriaged(
        severity=severity,
        due=due,
        categories=report.data["categories"],
        factory=report.data["factory"],
    )
    return parse_event(new_event(report.subject, data).to_bytes())


def escalated_event(report: Event, due: str = "2026-03-04T14:00:00Z") -> Event:
    data = CaseEscalated(severity="critical", reason="worker-marked-urgent", due=due)
    return parse_event(new_event(report.subject, data).to_bytes())


def status_event(report: Event, status: str) -> Event:
    return parse_event(new_event(report.subject, CaseStatusChanged(status=status)).to_bytes())


def digest_page(
    settings: Settings, token: str, since: int = 0, limit: int | None = None
) -> httpx.Response:
    """GET /api/digests as a buyer's client asks for it."""
    params: dict[str, Any] = {"since": since}
    if limit is not None:
        params["limit"] = limit
    return httpx.get(
        f"{settings.notify_url}/api/digests",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        verify=tls(),
    )


def all_digests(settings: Settings, token: str, since: int = 0) -> list[dict[str, Any]]:
    """Every digest file of the buyer after `since`, page by page."""
    files: list[dict[str, Any]] = []
    while True:
        page = digest_page(settings, token, since)
        assert page.status_code == 200, page.text
        answer = page.json()
        files += answer["digests"]
        since = answer["next"]
        if not answer["more"]:
            return files
