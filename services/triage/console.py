"""The operator console (being built: issue 18)."""

from __future__ import annotations

from fastapi import APIRouter

console = APIRouter(tags=["console"])
