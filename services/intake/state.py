"""What intake keeps beside the shared runtime: the proof-of-work key and gauge, the no-JS
queue, and the client of the audit log (for recipient key proofs and the log's vkey).

Nothing here is about a client: the gauge counts submissions, the queue admits them.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from hotline.shared.config import Settings
from hotline.shared.pow import DifficultyGauge

# No-JS submissions seal on the server (Argon2id at 64 MiB, Pillow): one at a time, and at
# most this many waiting; more are told to come back in a minute.
NOJS_MAX_WAITING = 8


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
    nojs_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    nojs_waiting: int = 0
    _vkey: str = ""

    def __post_init__(self) -> None:
        configured = self.settings.challenge_key
        self.challenge_key = bytes.fromhex(configured) if configured else secrets.token_bytes(32)
        self.gauge = DifficultyGauge(
            self.settings.pow_difficulty, self.settings.pow_calm_per_minute
        )
        self._vkey = self.settings.audit_vkey

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


def intake_state(request: Request) -> IntakeState:
    state: IntakeState = request.app.state.intake
    return state


IntakeDep = Annotated[IntakeState, Depends(intake_state)]
