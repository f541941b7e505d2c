"""Incident grouping (being built: issue 18)."""

from __future__ import annotations

from hotline.shared.service import Runtime


async def link_incidents(
    runtime: Runtime, case_id: str, factory: str, categories: list[str], hour: str
) -> None:
    """Link the case to the incidents of its factory and categories (being built)."""
