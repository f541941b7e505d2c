"""Retention (being built: issue 18)."""

from __future__ import annotations

from fastapi import APIRouter

from hotline.shared.clock import Clock
from hotline.shared.events import Event
from hotline.shared.service import Runtime

retention = APIRouter(tags=["retention"])


async def enforce_retention(runtime: Runtime, clock: Clock) -> None:
    """The retention scheduler (being built)."""


async def delete_copies(runtime: Runtime, event: Event) -> None:
    """Triage's consumer of envelopes.deleted: delete what triage still holds (being built)."""
