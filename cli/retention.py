"""`hotline admin retention ...`: the retention policy of an organisation (role
platform-admin), registered into the `admin` group by cli/admin.py.

A policy says how many days after a case is closed its identity envelope is deleted, and
how many days until everything sealed of it (content, attachments, the conversation) is.
A case follows its factory's policy, or "default" when the factory has none. Deletion is
done by triage's scheduler and reaches every service; the audit log keeps the hashes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from hotline.shared.config import Settings
from hotline.triage.retention import MAX_DAYS

from .session import bearer_token, call

JSON_HELP = "Print the policy as JSON."


def _url(settings: Settings, org: str) -> str:
    # Quoted whole: an ORG with "/", "?" or "#" stays one path segment (the service 422s it).
    return f"{settings.triage_url}/api/admin/retention/{quote(org, safe='')}"


def _show(policy: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(policy))
        return
    whose = (
        "its own" if policy["applies"] == policy["org"] else f"inherited from {policy['applies']}"
    )
    click.echo(
        f"{policy['org']}: identity deleted {policy['identity_days']} days after closure, "
        f"content {policy['content_days']} days after closure ({whose})"
    )


@click.group("retention")
def retention() -> None:
    """How long closed cases keep their identity and content (per factory, or "default")."""


@retention.command("set")
@click.argument("org")
@click.option(
    "--identity-days",
    type=click.IntRange(0, MAX_DAYS),
    required=True,
    help="Days after closure until the worker's identity envelope is deleted.",
)
@click.option(
    "--content-days",
    type=click.IntRange(0, MAX_DAYS),
    required=True,
    help="Days after closure until the content, attachments and conversation are deleted "
    "(at least --identity-days: deleting the content deletes the identity too).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def retention_set(org: str, identity_days: int, content_days: int, as_json: bool) -> None:
    """Set the retention policy of ORG (a factory code, or "default").

    ORG is a factory code such as F-001, or "default": the policy of every factory without
    one of its own. Cases closed already follow the new policy from their next deletion."""
    s = Settings()
    body = {"identity_days": identity_days, "content_days": content_days}
    _show(call("PUT", _url(s, org), auth=bearer_token(s), json_body=body), as_json)


@retention.command("show")
@click.argument("org", default="default")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def retention_show(org: str, as_json: bool) -> None:
    """Show the retention policy that applies to ORG (a factory code, or "default")."""
    s = Settings()
    _show(call("GET", _url(s, org), auth=bearer_token(s)), as_json)
