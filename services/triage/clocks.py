"""The regulation clocks of a case (being built: issue 18)."""

from __future__ import annotations

from hotline.shared.clock import Clock
from hotline.shared.service import Runtime


async def watch_clocks(runtime: Runtime, clock: Clock) -> None:
    """The breach scheduler (being built)."""
