"""`hotline admin ...`: platform administration (role platform-admin), the registry of
factories, buyers, their links and keys through triage's admin API; loaded by cli/main.py only
when an admin command runs (it imports the registry's rules, and with them the database driver).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from hotline.shared.config import Settings
from hotline.shared.keys import CryptoError, b64encode, load_public_key
from hotline.shared.registry import SCHEDULES

from .retention import retention
from .session import bearer_token, call

FC = TypeVar("FC", bound=Callable[..., object])


def public_key_file_option(help_text: str) -> Callable[[FC], FC]:
    """`--public-key-file`: a public key file to register (a private one is refused)."""
    return click.option(
        "--public-key-file",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


@click.group()
def admin() -> None:
    """Platform administration (role platform-admin)."""


@admin.group("factory")
def admin_factory() -> None:
    """Factories."""


@admin_factory.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The factory's name.")
@click.option("--country", required=True, help="ISO 3166 alpha-2 country code, e.g. CN.")
@click.option("--city", default="", help="The factory's city (workers search by name and city).")
def admin_factory_add(code: str, name: str, country: str, city: str) -> None:
    """Register factory CODE (e.g. F-001)."""
    s = Settings()
    call(
        "POST",
        f"{s.triage_url}/api/admin/factories",
        auth=bearer_token(s),
        json_body={"code": code, "name": name, "country": country, "city": city},
    )
    click.echo(f"factory {code} added")


@admin.group("buyer")
def admin_buyer() -> None:
    """Buyers (brands) and their public keys."""


@admin_buyer.command("add")
@click.argument("buyer_id")
@click.option("--name", required=True, help="The buyer's name.")
@public_key_file_option(
    "The public key file (NAME.key.pub from `hotline keys generate`), never the private."
)
def admin_buyer_add(buyer_id: str, name: str, public_key_file: Path) -> None:
    """Register buyer BUYER_ID (its Keycloak `org`) with its public key."""
    s = Settings()
    result = call(
        "POST",
        f"{s.triage_url}/api/admin/buyers",
        auth=bearer_token(s),
        json_body={
            "buyer_id": buyer_id,
            "name": name,
            "public_key": _public_key_text(public_key_file),
        },
    )
    click.echo(f"buyer {buyer_id} added, key {result['key_id']}")


@admin_buyer.command("rotate-key")
@click.argument("buyer_id")
@public_key_file_option(
    "The buyer's NEW public key file (NAME.key.pub from `hotline keys generate`)."
)
def admin_buyer_rotate_key(buyer_id: str, public_key_file: Path) -> None:
    """Give buyer BUYER_ID a new key and revoke its current one.

    Reports are sealed to the new key from now on; a report sealed to the revoked key is
    refused. The buyer keeps its old private key to open what it received before.
    """
    s = Settings()
    result = call(
        "POST",
        f"{s.triage_url}/api/admin/buyers/{buyer_id}/keys",
        auth=bearer_token(s),
        json_body={"public_key": _public_key_text(public_key_file)},
    )
    click.echo(
        f"buyer {buyer_id}: key {result['key_id']} is current, "
        f"{result['revoked_key_ids'][-1]} revoked"
    )


@admin_buyer.command("schedule")
@click.argument("buyer_id")
@click.argument("schedule", type=click.Choice(SCHEDULES))
def admin_buyer_schedule(buyer_id: str, schedule: str) -> None:
    """Issue buyer BUYER_ID's digest daily (the default) or weekly.

    Critical cases and escalations are sent at once whatever the schedule.
    """
    s = Settings()
    result = call(
        "PUT",
        f"{s.triage_url}/api/admin/buyers/{buyer_id}/schedule",
        auth=bearer_token(s),
        json_body={"schedule": schedule},
    )
    click.echo(f"buyer {buyer_id}: digest {result['schedule']}")


@admin.command("link")
@click.argument("buyer_id")
@click.argument("factory_code")
def admin_link(buyer_id: str, factory_code: str) -> None:
    """Link a buyer to a factory it buys from: its reports reach that buyer."""
    s = Settings()
    call(
        "POST",
        f"{s.triage_url}/api/admin/links",
        auth=bearer_token(s),
        json_body={"buyer_id": buyer_id, "factory": factory_code},
    )
    click.echo(f"{buyer_id} linked to {factory_code}")


@admin.group("operator-key")
def admin_operator_key() -> None:
    """The hotline operator's public keys."""


@admin_operator_key.command("add")
@public_key_file_option(
    "The public key file (NAME.key.pub from `hotline keys generate`), never the private."
)
def admin_operator_key_add(public_key_file: Path) -> None:
    """Register an operator public key: every report is sealed to it."""
    s = Settings()
    result = call(
        "POST",
        f"{s.triage_url}/api/admin/operator-keys",
        auth=bearer_token(s),
        json_body={"public_key": _public_key_text(public_key_file)},
    )
    click.echo(f"operator key {result['key_id']} added")


def _public_key_text(path: Path) -> str:
    """The base64 public key in key file `path`; a private key file is refused here."""
    try:
        return b64encode(load_public_key(path))
    except CryptoError as exc:
        raise click.ClickException(str(exc)) from None


admin.add_command(retention)
