"""Retention (being built: issue 18)."""

from __future__ import annotations

from fastapi import APIRouter

from hotline.shared.clock import Clock
from hotline.shared.service import Runtime

retention = APIRouter(tags=["retention"])


async def enforce_retention(runtime: Runtime, clock: Clock) -> None:
    """The retention scheduler (being built)."""
