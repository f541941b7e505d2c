"""The conversation of a case from the command line: the operator's replies, reading the
worker's answers and the buyers' questions, forwarding or declining a question; a buyer's
question (shared/messages.py: who writes which kind, sealed to whom).

Everything is sealed and opened on this machine. A message to the worker is sealed to the
case's reply key only (derived from the worker's receipt: nobody else can open it); a buyer's
question to the operator keys only. Each envelope binds `message_routing(message id, kind)`,
so the message id is chosen here, before sealing. Registered into the `cases` and `digests`
groups by cli/main.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope, EnvelopeError, open_envelope, seal_envelope
from hotline.shared.keys import CryptoError, b64decode_strict, key_id
from hotline.shared.messages import (
    MAX_MESSAGE_BYTES,
    MessageCreate,
    decision_id,
    message_routing,
)

from .options import KEY_OPTION, private_key
from .session import Credential, bearer_token, call

TO_WORKER_KINDS = ("reply", "acknowledgement", "feedback")  # what `cases reply` sends
DECIDED = {"forward": "forwarded", "decline": "declined"}

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


# --- sealing and opening -----------------------------------------------------------------


def message_text(text: str) -> bytes:
    """What a person wrote, as the bytes to seal; refused if empty or too long."""
    data = text.encode()
    if not text.strip():
        raise click.BadParameter("the message is empty", param_hint="--text")
    if len(data) > MAX_MESSAGE_BYTES:
        raise click.BadParameter(
            f"the message is {len(data)} bytes; at most {MAX_MESSAGE_BYTES}", param_hint="--text"
        )
    return data


def seal_message(
    plaintext: bytes, case_id: str, message_id: str, kind: str, recipients: dict[str, bytes]
) -> Envelope:
    try:
        return seal_envelope(
            plaintext,
            case_id=case_id,
            kind="content",
            routing=message_routing(message_id, kind),
            recipients=recipients,
        )
    except CryptoError as exc:
        raise click.ClickException(f"cannot seal the message: {exc}") from None


def open_message(message: dict[str, Any], key: bytes, case_id: str) -> str:
    """The text of an answer's or question's envelope; EnvelopeError if it cannot be opened."""
    plaintext = open_envelope(
        message["envelope"],
        private_key=key,
        case_id=case_id,
        routing=message_routing(message["message_id"], message["kind"]),
    )
    return plaintext.decode(errors="replace")


def new_message(**fields: Any) -> dict[str, Any]:
    """The request body, built with the very model the services validate."""
    try:
        return MessageCreate(**fields).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(f"invalid message: {problems}") from None


# --- the operator (role triage-analyst) ----------------------------------------------------


def reply_recipients(s: Settings, auth: Credential, case_id: str) -> dict[str, bytes]:
    """The case's reply key, as the one recipient of a message to the worker."""
    found = call("GET", f"{s.triage_url}/api/cases/{case_id}/reply-key", auth=auth)
    try:
        public = b64decode_strict(found["reply_key"])
        return {key_id(public): public}
    except CryptoError as exc:
        raise click.ClickException(f"case {case_id}: the reply key is not usable: {exc}") from None


def post_operator_message(s: Settings, auth: Credential, case_id: str, body: dict[str, Any]) -> str:
    posted = call("POST", f"{s.triage_url}/api/cases/{case_id}/messages", auth=auth, json_body=body)
    return str(posted["message_id"])


def conversation(s: Settings, auth: Credential, case_id: str) -> list[dict[str, Any]]:
    found = call("GET", f"{s.triage_url}/api/cases/{case_id}/messages", auth=auth)
    messages: list[dict[str, Any]] = found["messages"]
    return messages


def question_of(messages: list[dict[str, Any]], case_id: str, question_id: str) -> dict[str, Any]:
    """The undecided question `question_id` of the case; a clear error otherwise."""
    for message in messages:
        if message["message_id"] == question_id and message["kind"] == "question":
            if message["decision"] is not None:
                raise click.ClickException(
                    f"question {question_id} was already decided ({message['decision']})"
                )
            return message
    raise click.ClickException(f"case {case_id} has no question {question_id}")


@click.command("reply")
@click.argument("case_id")
@click.option("--text", required=True, help="The message (sealed here to the worker's key).")
@click.option(
    "--kind",
    type=click.Choice(TO_WORKER_KINDS),
    default="reply",
    show_default=True,
    help="acknowledgement: the case is received and read (the 7-day clock); feedback: what "
    "was done (the 3-month clock); reply: anything else.",
)
@JSON_OPTION
def cases_reply(case_id: str, text: str, kind: str, as_json: bool) -> None:
    """Send a message to the worker of CASE_ID, sealed on this machine to the case's reply key.

    Only the worker's receipt opens it: the worker reads it on the status page.
    """
    plaintext = message_text(text)
    s = Settings()
    auth = bearer_token(s)
    message_id = str(uuid.uuid4())
    envelope = seal_message(
        plaintext, case_id, message_id, kind, reply_recipients(s, auth, case_id)
    )
    body = new_message(message_id=message_id, kind=kind, envelope=envelope)
    post_operator_message(s, auth, case_id, body)
    if as_json:
        click.echo(json.dumps({"case_id": case_id, "message_id": message_id, "kind": kind}))
    else:
        click.echo(f"{kind} {message_id} sent to the worker of case {case_id}")


@click.command("messages")
@click.argument("case_id")
@KEY_OPTION
@JSON_OPTION
def cases_messages(case_id: str, key_file: Path, as_json: bool) -> None:
    """Show the conversation of CASE_ID, opening the worker's answers and the buyers'
    questions on this machine with your operator key.

    Messages to the worker are shown by kind and day only (they are sealed to the worker's
    key). A message that cannot be opened is reported on stderr, the others are still
    shown, and the exit status is then 1.
    """
    key = private_key(key_file)
    s = Settings()
    messages = conversation(s, bearer_token(s), case_id)
    shown = []
    unopened = 0
    for message in messages:
        text = None
        if message["envelope"] is not None:
            try:
                text = open_message(message, key, case_id)
            except EnvelopeError as exc:
                unopened += 1
                click.echo(f"message {message['message_id']}: cannot open it: {exc}", err=True)
        fields = ("message_id", "kind", "author_role", "day", "in_reply_to", "decision")
        shown.append(
            {
                **{name: message[name] for name in fields},
                "text": text,
                "attachments": len(message["attachments"]),
            }
        )
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        if not shown:
            click.echo("no messages")
        for item in shown:
            click.echo(_message_line(item))
            if item["text"] is not None:
                click.echo(f"  {item['text']}")
    if unopened:
        raise click.ClickException(
            f"{unopened} of {len(messages)} messages could not be opened with {key_file}"
        )


def _message_line(item: dict[str, Any]) -> str:
    line = f"— {item['day']}  {item['kind']:<15} {item['author_role']:<14} {item['message_id']}"
    if item["in_reply_to"]:
        line += f"  (on question {item['in_reply_to']})"
    if item["decision"]:
        line += f"  [{DECIDED[item['decision']]}]"
    if item["attachments"]:
        line += f"  {item['attachments']} attachment(s): `hotline cases attachments`"
    return line


@click.command("forward")
@click.argument("case_id")
@click.argument("question_id")
@KEY_OPTION
@click.option(
    "--text", help="Send this to the worker instead of the question as the buyer wrote it."
)
def cases_forward(case_id: str, question_id: str, key_file: Path, text: str | None) -> None:
    """Forward a buyer's question QUESTION_ID of CASE_ID to the worker.

    The question is opened here with your operator key and sealed again to the worker's
    reply key (or --text is sent instead, e.g. the question reworded so that it says
    nothing about the buyer). A question is decided once: forwarded or declined.
    """
    key = private_key(key_file)
    s = Settings()
    auth = bearer_token(s)
    question = question_of(conversation(s, auth, case_id), case_id, question_id)
    if text is None:
        try:
            text = open_message(question, key, case_id)
        except EnvelopeError as exc:
            raise click.ClickException(f"question {question_id}: cannot open it: {exc}") from None
    plaintext = message_text(text)
    message_id = decision_id(question_id)
    recipients = reply_recipients(s, auth, case_id)
    envelope = seal_message(plaintext, case_id, message_id, "forward", recipients)
    body = new_message(
        message_id=message_id, kind="forward", envelope=envelope, in_reply_to=question_id
    )
    post_operator_message(s, auth, case_id, body)
    click.echo(f"question {question_id} forwarded to the worker of case {case_id}")


@click.command("decline")
@click.argument("case_id")
@click.argument("question_id")
def cases_decline(case_id: str, question_id: str) -> None:
    """Decline a buyer's question QUESTION_ID of CASE_ID: it never reaches the worker.

    A question is decided once: forwarded or declined.
    """
    s = Settings()
    body = new_message(message_id=decision_id(question_id), kind="decline", in_reply_to=question_id)
    post_operator_message(s, bearer_token(s), case_id, body)
    click.echo(f"question {question_id} of case {case_id} declined")


# --- the buyer ---------------------------------------------------------------------------


@click.command("ask")
@click.argument("case_id")
@click.option("--text", required=True, help="The question (sealed here to the operator keys).")
@JSON_OPTION
def digests_ask(case_id: str, text: str, as_json: bool) -> None:
    """Ask the worker of CASE_ID (a case of your digest) a question, through the operator.

    It is sealed on this machine to the hotline operator's keys only: the worker sees it
    only if an operator forwards it.
    """
    plaintext = message_text(text)
    s = Settings()
    auth = bearer_token(s)
    found = call("GET", f"{s.notify_url}/api/operator-keys", auth=auth)
    try:
        recipients = {kid: b64decode_strict(pub) for kid, pub in found["keys"].items()}
    except CryptoError as exc:
        raise click.ClickException(f"an operator key is not usable: {exc}") from None
    if not recipients:
        raise click.ClickException("no operator key is registered: nobody could read it")
    message_id = str(uuid.uuid4())
    envelope = seal_message(plaintext, case_id, message_id, "question", recipients)
    body = new_message(message_id=message_id, kind="question", envelope=envelope)
    call("POST", f"{s.notify_url}/api/cases/{case_id}/questions", auth=auth, json_body=body)
    if as_json:
        click.echo(json.dumps({"case_id": case_id, "message_id": message_id}))
    else:
        click.echo(f"question {message_id} sent to the operator about case {case_id}")


OPERATOR_COMMANDS = (cases_reply, cases_messages, cases_forward, cases_decline)
BUYER_COMMANDS = (digests_ask,)
