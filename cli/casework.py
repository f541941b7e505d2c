"""The operator's case work from the command line (role triage-analyst): claim a case, move
it through its statuses, write a note. Registered into the `cases` group by cli/main.py.

A note is for the operators only: it is sealed on this machine to every registered operator
key (never to the worker's reply key) and posted as a message of kind `note`; `hotline cases
messages ID --key FILE` opens it again.
"""

from __future__ import annotations

import json
import uuid

import click

from hotline.shared.config import Settings
from hotline.shared.keys import CryptoError, b64decode_strict
from hotline.triage.contract import INITIAL_STATUS, STATUSES

from .conversation import (
    JSON_OPTION,
    message_text,
    new_message,
    post_operator_message,
    seal_message,
)
from .session import bearer_token, call

# Where an operator can move a case: every status but the one triage records it in.
MOVES = tuple(status for status in STATUSES if status != INITIAL_STATUS)


@click.command("claim")
@click.argument("case_id")
@click.option("--force", is_flag=True, help="Take over a case another operator has claimed.")
@JSON_OPTION
def cases_claim(case_id: str, force: bool, as_json: bool) -> None:
    """Make yourself the assignee of CASE_ID."""
    s = Settings()
    url = f"{s.triage_url}/api/cases/{case_id}/claim"
    claimed = call("POST", url, auth=bearer_token(s), json_body={"force": force})
    if as_json:
        click.echo(json.dumps(claimed))
    else:
        click.echo(f"case {case_id} is yours")


@click.command("status")
@click.argument("case_id")
@click.argument("status", type=click.Choice(MOVES))
@click.option("--reason", help="Why (required to resolve or close a case).")
@JSON_OPTION
def cases_status(case_id: str, status: str, reason: str | None, as_json: bool) -> None:
    """Move CASE_ID to STATUS (received, acknowledged, investigating, remediation, then
    resolved; closed from any open status)."""
    s = Settings()
    url = f"{s.triage_url}/api/cases/{case_id}/status"
    changed = call(
        "POST", url, auth=bearer_token(s), json_body={"status": status, "reason": reason}
    )
    if as_json:
        click.echo(json.dumps(changed))
    else:
        click.echo(f"case {case_id} is {changed['status']}")


@click.command("note")
@click.argument("case_id")
@click.option("--text", required=True, help="The note (sealed here to the operator keys).")
@JSON_OPTION
def cases_note(case_id: str, text: str, as_json: bool) -> None:
    """Add a note to CASE_ID for the operators (the worker never sees it)."""
    plaintext = message_text(text)
    s = Settings()
    auth = bearer_token(s)
    found = call("GET", f"{s.triage_url}/api/cases/{case_id}/note-keys", auth=auth)
    try:
        recipients = {kid: b64decode_strict(pub) for kid, pub in found["keys"].items()}
    except CryptoError as exc:
        raise click.ClickException(f"an operator key is not usable: {exc}") from None
    if not recipients:
        raise click.ClickException("no operator key is registered: nobody could read the note")
    message_id = str(uuid.uuid4())
    envelope = seal_message(plaintext, case_id, message_id, "note", recipients)
    body = new_message(message_id=message_id, kind="note", envelope=envelope)
    post_operator_message(s, auth, case_id, body)
    if as_json:
        click.echo(json.dumps({"case_id": case_id, "message_id": message_id}))
    else:
        click.echo(f"note {message_id} added to case {case_id}")


CASEWORK_COMMANDS = (cases_claim, cases_status, cases_note)
