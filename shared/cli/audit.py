"""`hotline audit`: the auditor's tools, run on the compliance officer's own machine."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import Settings
from .session import call


@click.group()
def audit() -> None:
    """The public audit log."""


@audit.command("entries")
@click.option("--case", "case_id", help="Only the entries of this case.")
@click.option("--start", default=0, show_default=True, help="First index.")
@click.option("--limit", default=100, show_default=True, help="At most this many.")
def audit_entries(case_id: str | None, start: int, limit: int) -> None:
    """Print log entries (hashes and metadata only) as JSON lines."""
    s = Settings()
    params: dict[str, Any] = {"start": start, "limit": limit}
    if case_id:
        params["case"] = case_id
    for entry in call("GET", f"{s.audit_url}/api/entries", params=params):
        click.echo(json.dumps(entry, ensure_ascii=False))
