"""The conversation of a case: who may write which kind of message, to whom it is sealed,
and what the envelopes bind. Shared by intake (the worker's answers), triage (the operator's
replies and decisions on buyers' questions), notify (the buyers' questions), the CLI and
the audit log's policy, so that all of them read one table.

A message is one content envelope (and, for a worker's answer, up to four attachment
envelopes) of the case, whose associated data binds `message_routing(message_id, kind)`
in place of the report's routing metadata: a reply cannot be moved to another message, or
passed off as another kind, without failing to open.

- to the worker (`TO_WORKER`): sealed to the case's reply key only (derived from the
  receipt; nobody else holds it). An acknowledgement, a reply, feedback, or a buyer's
  question forwarded by the operator (`forward`, re-sealed on the operator's machine).
- to the operators (`TO_OPERATORS`): sealed to the operator keys only. The worker's answer,
  a buyer's question, which reaches the worker only if an operator forwards it, and an
  operator's `note` on the case (for the operators only: the worker never sees it).
- `decline`: the operator's decision not to forward a question; it carries no envelope.
- `noted`: a buyer's acknowledgement that it read the case (`hotline digests ack`); no
  envelope either: the operator sees that the buyer acted, nothing more.

A question gets at most one decision (forward or decline): its message id is
`decision_id(question)`, so a second decision is a duplicate.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .envelope import Envelope
from .reports import MAX_ATTACHMENTS, LookupToken, ProofOfWork
from .roles import Role

MessageKind = Literal[
    "acknowledgement",
    "reply",
    "feedback",
    "forward",
    "decline",
    "answer",
    "question",
    "noted",
    "note",
]
MESSAGE_KINDS = frozenset(get_args(MessageKind))
TO_WORKER = frozenset({"acknowledgement", "reply", "feedback", "forward"})
TO_OPERATORS = frozenset({"answer", "question", "note"})
# Who writes which kinds (the author_role of the event; "worker" has no realm role).
WORKER = "worker"
KINDS_BY_AUTHOR: dict[str, frozenset[str]] = {
    Role.OPERATOR: frozenset(
        {"acknowledgement", "reply", "feedback", "forward", "decline", "note"}
    ),
    WORKER: frozenset({"answer"}),
    Role.BUYER: frozenset({"question", "noted"}),
}
WITHOUT_ENVELOPE = frozenset({"decline", "noted"})
DECISIONS = frozenset({"forward", "decline"})  # an operator's answer to a buyer's question
MAX_MESSAGE_BYTES = 32 * 1024  # what the page and the CLI let a person write in one message

_DECISION_NAMESPACE = uuid.UUID("5b0f4f3e-6f53-4f5e-9d0a-6b1d3c1f7e21")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def message_routing(message_id: str, kind: str) -> dict[str, Any]:
    """What a message's envelopes bind in their associated data instead of report routing."""
    return {"message": message_id, "kind": kind}


def decision_id(question_id: str) -> str:
    """The message id of the one decision (forward or decline) on `question_id`."""
    return str(uuid.uuid5(_DECISION_NAMESPACE, question_id))


def _check_uuid(value: str | None, what: str) -> str | None:
    if value is not None and not _UUID.fullmatch(value):
        raise ValueError(f"{what} must be a lower-case UUID")
    return value


class MessageCreate(BaseModel):
    """A message as its author posts it (operator to triage, buyer to notify; the worker's
    answer is `AnswerCreate`). The envelopes must be of this case (checked by each service,
    which knows the case) and sealed to the kind's keys (ditto)."""

    model_config = ConfigDict(extra="forbid")

    message_id: str
    kind: MessageKind
    envelope: Envelope | None = None
    in_reply_to: str | None = None  # the question a forward or decline decides
    attachments: list[Envelope] = Field(default=[], max_length=MAX_ATTACHMENTS)

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str) -> str:
        return _check_uuid(value, "message_id") or value

    @field_validator("in_reply_to")
    @classmethod
    def _in_reply_to(cls, value: str | None) -> str | None:
        return _check_uuid(value, "in_reply_to")

    @model_validator(mode="after")
    def _shape(self) -> MessageCreate:
        if (self.kind in WITHOUT_ENVELOPE) != (self.envelope is None):
            raise PydanticCustomError(
                "envelope_shape", "a decline or a note carries no envelope; every other one"
            )
        if (self.kind in DECISIONS) != (self.in_reply_to is not None):
            raise ValueError("in_reply_to names the question of a forward or decline, only")
        if self.kind in DECISIONS and self.message_id != decision_id(self.in_reply_to or ""):
            raise ValueError("a decision's message_id is decision_id(in_reply_to)")
        if self.attachments and self.kind != "answer":
            raise ValueError("only a worker's answer carries attachments")
        if self.envelope is not None and self.envelope.kind != "content":
            raise PydanticCustomError("envelope_shape", "a message is a content envelope")
        if any(attachment.kind != "attachment" for attachment in self.attachments):
            raise PydanticCustomError("envelope_shape", "attachments are attachment envelopes")
        return self

    def case_ids(self) -> set[str]:
        """The case ids its envelopes claim (one, if they are all of the same case)."""
        envelopes = [self.envelope, *self.attachments]
        return {envelope.case_id for envelope in envelopes if envelope is not None}


class AnswerCreate(BaseModel):
    """POST /api/answers on intake: the worker's answer, found by the receipt's lookup token,
    sealed on the device to the operator keys, with a solved proof of work."""

    model_config = ConfigDict(extra="forbid")

    lookup_token: LookupToken
    message_id: str
    envelope: Envelope
    attachments: list[Envelope] = Field(default=[], max_length=MAX_ATTACHMENTS)
    pow: ProofOfWork

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str) -> str:
        return _check_uuid(value, "message_id") or value

    def message(self) -> MessageCreate:
        """The answer as a message (validates the envelopes' kinds)."""
        return MessageCreate(
            message_id=self.message_id,
            kind="answer",
            envelope=self.envelope,
            attachments=self.attachments,
        )


class StatusQuery(BaseModel):
    """POST /api/status on intake: the lookup token (derived from the receipt on the device)
    and a solved proof of work."""

    model_config = ConfigDict(extra="forbid")

    lookup_token: LookupToken
    pow: ProofOfWork
