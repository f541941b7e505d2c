"""What an audit reports: `AuditFailure`, naming the `Rule` it broke and the entry index."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Rule(StrEnum):
    """What a failure says was broken (stable: scripts read them from `--json`)."""

    SIGNATURE = "checkpoint-signature"
    COSIGNATURE = "cosignature-valid"
    QUORUM = "witness-quorum"
    ROLLBACK = "no-rollback"
    FORK = "no-fork"
    MISSING = "resource-served"
    BUNDLE = "bundle-well-formed"
    TILE = "tile-matches-entries"
    ROOT = "root-matches-checkpoint"
    ENTRY = "entry-well-formed"
    OPERATOR_ONLY = "identity-sealed-to-operator-keys-registered-earlier"
    NO_FACTORY_DISCLOSURE = "no-identity-disclosure-to-factory"
    NO_FACTORY_KEY = "no-factory-key-receives-identity"
    REPLY_KEY_ONLY = "messages-to-the-worker-sealed-to-its-reply-key-only"
    OPERATOR_KEYS_ONLY = "answers-and-questions-sealed-to-operator-keys-only"
    KIND_MATCHES_AUTHOR = "message-kind-matches-author"
    FORWARDS_DISCLOSED = "forwards-disclosed"
    NOT_REVOKED = "no-envelope-sealed-to-a-revoked-key"
    NO_HAND_OUT_AFTER_DELETION = "no-hand-out-after-deletion"
    PROOF = "inclusion-proof"


class AuditFailure(Exception):
    """One broken rule: its name, the entry index when there is one, and what is wrong."""

    def __init__(self, rule: Rule, message: str, index: int | None = None) -> None:
        where = f"entry {index}: " if index is not None else ""
        super().__init__(f"{where}{message} [rule {rule}]")
        self.rule = rule
        self.index = index
        self.detail = message

    def to_json(self) -> dict[str, Any]:
        return {"rule": str(self.rule), "index": self.index, "message": self.detail}
