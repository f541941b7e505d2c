"""Statistics (being built: issue 18)."""

from __future__ import annotations

from fastapi import APIRouter

stats = APIRouter(tags=["statistics"])
