"""What intake keeps beside the shared runtime: the proof-of-work key and gauges, the no-JS
queue, the global rate of receipt lookups, and the client of the audit log (for recipient
key proofs and the log's vkey).

Nothing here is about a client: the gauges count submissions and failed lookups, the queue
admits them, the rate limiter counts lookups of everyone together.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from hotline.shared.config import Settings
from hotline.shared.pow import DifficultyGauge

# No-JS submissions seal on the server (Argon2id at 64 MiB, Pillow): one at a time, and at
# most this many waiting; more are told to come back in a minute.
NOJS_MAX_WAITING = 8
# Receipt lookups (status page and answers) of all clients together, per process: above
# this the status page says "busy" (a guesser's throughput is capped whatever it pays).
LOOKUPS_PER_SECOND = 20
# Failed lookups per minute that are normal (typos); each doubling above adds a bit.
CALM_FAILURES_PER_MINUTE = 10


class Refused(Exception):
    """A submission refused: `code` is one of the fixed codes the page translates (see
    ERROR_STATUS in reports.py); the message is an English sentence that never echoes input."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class IntakeState:
    settings: Settings
    audit: httpx.AsyncClient
    challenge_key: bytes = b""
    gauge: DifficultyGauge = field(init=False)
    failed_lookups: DifficultyGauge = field(init=False)
    lookups: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )
    nojs_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    nojs_waiting: int = 0
    _vkey: str = ""

    def __post_init__(self) -> None:
        configured = self.settings.challenge_key
        self.challenge_key = bytes.fromhex(configured) if configured else secrets.token_bytes(32)
        self.gauge = DifficultyGauge(
            self.settings.pow_difficulty, self.settings.pow_calm_per_minute
        )
        self.failed_lookups = DifficultyGauge(
            self.settings.pow_difficulty, CALM_FAILURES_PER_MINUTE
        )
        self._vkey = self.settings.audit_vkey

    def difficulty(self) -> int:
        """The difficulty of a new challenge: what the submission rate and the rate of
        failed receipt lookups each ask, whichever is higher (one challenge serves both, so
        a lookup challenge must never be cheaper than a report's)."""
        return max(self.gauge.difficulty(), self.failed_lookups.difficulty())

    @asynccontextmanager
    async def nojs_turn(self) -> AsyncIterator[None]:
        """Wait for the no-JS queue's one slot (server-side Argon2id and sealing, one at a
        time); raises Refused("busy") when NOJS_MAX_WAITING are waiting already."""
        if self.nojs_waiting >= NOJS_MAX_WAITING:
            raise Refused("busy", "the hotline is busy; please try again in a minute")
        self.nojs_waiting += 1
        try:
            async with self.nojs_slot:
                yield
        finally:
            self.nojs_waiting -= 1

    def admit_lookup(self) -> None:
        """Count one receipt lookup against the global rate; raises Refused("busy")."""
        if not self.lookups.hit(_LOOKUP_RATE, "lookup"):
            raise Refused("busy", "the hotline is busy; please try again in a minute")

    async def log_vkey(self) -> str:
        """The audit log's verifier key the page pins: configured (production), else asked of
        the audit log once (development)."""
        if not self._vkey:
            try:
                response = await self.audit.get("/vkey")
                response.raise_for_status()
            except httpx.HTTPError:
                raise Refused("log-unavailable", "the audit log cannot be reached") from None
            self._vkey = response.text.strip()
        return self._vkey

    async def key_proofs(self, key_ids: list[str]) -> dict[str, Any]:
        """The latest checkpoint and the inclusion proof of each key's `key.registered`
        entry, as the audit log gives them (GET /api/key-proofs). If the log cannot answer
        (down, or no checkpoint yet) the checkpoint is empty and there are no proofs: the
        page then refuses to seal and says so, while the operator's CLI, which seals with
        keys it was given out of band, still works."""
        try:
            response = await self.audit.get(
                "/api/key-proofs", params=[("key", kid) for kid in sorted(key_ids)]
            )
            response.raise_for_status()
            found: dict[str, Any] = response.json()
            return {"checkpoint": found["checkpoint"], "proofs": found["proofs"]}
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return {"checkpoint": "", "proofs": {}}


_LOOKUP_RATE = RateLimitItemPerSecond(LOOKUPS_PER_SECOND)


async def intake_state(request: Request) -> IntakeState:
    state: IntakeState = request.app.state.intake
    return state


IntakeDep = Annotated[IntakeState, Depends(intake_state)]
