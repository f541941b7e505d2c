"""The report as it crosses the wire: the submission body, its routing metadata, and the
keys a client seals to.

Shared by the submitting clients (CLI, browser page) and intake, so that both bind the same
routing metadata into the envelopes' associated data and the CLI builds its request from the
very model intake validates.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .envelope import Envelope
from .keys import CryptoError, load_public_key
from .taxonomy import category_codes

LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
HEX_TOKEN = re.compile(r"^[0-9a-f]{64}$")
MAX_CATEGORIES = 5
# Three photos and one voice note; each at most the largest attachment bucket (4 MiB).
MAX_ATTACHMENTS = 4


def _hex_token(value: str) -> str:
    if not HEX_TOKEN.fullmatch(value):
        raise ValueError("lookup_token must be 64 lower-case hex digits")
    return value


# The receipt's lookup token as the client sends it (shared/receipt.py); intake stores only
# its hash.
LookupToken = Annotated[str, AfterValidator(_hex_token)]


def routing_metadata(
    factory: str, categories: list[str], urgent: bool, language: str
) -> dict[str, Any]:
    """Plaintext routing metadata, bound into both envelopes' associated data. No free text."""
    return {
        "factory": factory,
        "categories": sorted(categories),
        "urgent": urgent,
        "language": language,
    }


class KeyProof(BaseModel):
    index: int
    entry: str  # base64 of the leaf bytes
    inclusion: list[str]  # base64 hashes, RFC 9162 inclusion proof


class Transparency(BaseModel):
    checkpoint: str  # the audit log's signed checkpoint note
    proofs: dict[str, KeyProof]


class RecipientKeys(BaseModel):
    """The keys a report at one factory is sealed to (key id -> base64 X25519 public key;
    content to operators and linked buyers, identity to operators only), with the proof that
    the audit log holds each key's registration."""

    factory: str
    content: dict[str, str]
    identity: dict[str, str]
    transparency: Transparency


class ProofOfWork(BaseModel):
    """A solved challenge of GET /api/challenge (shared/pow.py)."""

    model_config = ConfigDict(extra="forbid")

    challenge: str = Field(max_length=200)
    solution: str = Field(max_length=20)


class ReportCreate(BaseModel):
    """POST /api/reports: routing metadata in clear, content, identity and attachments as
    envelopes of this case (each of its own kind), the receipt's lookup token and reply public
    key (derived on the client from the receipt, which never leaves it), and a solved proof of
    work. Whether the envelopes are sealed to the right keys takes the registry, so intake
    checks that."""

    model_config = ConfigDict(extra="forbid")

    case_id: str
    factory: str = Field(min_length=2, max_length=32)
    categories: list[str] = Field(min_length=1, max_length=MAX_CATEGORIES)
    urgent: StrictBool = False  # true or false only: the envelopes bind it as sent
    language: str = "en"
    channel: Literal["web", "phone"] = "web"
    lookup_token: LookupToken
    reply_key: str  # base64 X25519 public key the worker's replies are sealed to
    content: Envelope
    identity: Envelope | None = None
    attachments: list[Envelope] = Field(default=[], max_length=MAX_ATTACHMENTS)
    pow: ProofOfWork | None = None  # required by POST /api/reports; the no-JS path has none

    @field_validator("case_id")
    @classmethod
    def _case_id_is_uuid4(cls, value: str) -> str:
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            raise ValueError("case_id must be a UUID") from None
        if parsed.version != 4 or str(parsed) != value:
            raise ValueError("case_id must be a lower-case UUID4")
        return value

    @field_validator("reply_key")
    @classmethod
    def _reply_key_is_a_public_key(cls, value: str) -> str:
        try:
            load_public_key(value)
        except CryptoError:
            raise ValueError("reply_key must be a base64 X25519 public key") from None
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - category_codes())
        if unknown:
            raise ValueError("unknown category; see `hotline categories`")
        if len(set(value)) != len(value):
            raise ValueError("categories must not repeat")
        return value

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        if not LANGUAGE.fullmatch(value):  # `$` alone would let "en\n" through
            raise ValueError("language must be a BCP 47 tag such as 'en' or 'zh-Hans'")
        return value

    @model_validator(mode="after")
    def _envelopes_of_this_case(self) -> ReportCreate:
        pairs = [("content", self.content), ("identity", self.identity)]
        pairs += [("attachment", attachment) for attachment in self.attachments]
        for kind, envelope in pairs:
            if envelope is not None and (envelope.kind, envelope.case_id) != (kind, self.case_id):
                raise PydanticCustomError(
                    "envelope_shape", f"the {kind} envelope is not the {kind} of this case"
                )
        return self

    def routing(self) -> dict[str, Any]:
        return routing_metadata(self.factory, self.categories, self.urgent, self.language)


class ReportAccepted(BaseModel):
    case_id: str
    status: Literal["received"] = "received"
