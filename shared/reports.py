"""The report as it crosses the wire: the submission body, its routing metadata, and the
keys a client seals to.

Shared by the submitting clients (CLI, browser page) and intake, so that both bind the same
routing metadata into the envelopes' associated data and the CLI builds its request from the
very model intake validates.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .envelope import Envelope
from .taxonomy import category_codes

LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MAX_CATEGORIES = 5


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


class RecipientKeys(BaseModel):
    """GET /api/recipients/{factory}: the keys a report there is sealed to, key id -> base64
    X25519 public key; content to operators and linked buyers, identity to operators only."""

    factory: str
    content: dict[str, str]
    identity: dict[str, str]


class ReportCreate(BaseModel):
    """POST /api/reports: routing metadata in clear, content and identity as envelopes of
    this case (each of its own kind). Whether they are sealed to the right keys takes the
    registry, so intake checks that."""

    model_config = ConfigDict(extra="forbid")

    case_id: str
    factory: str = Field(min_length=2, max_length=32)
    categories: list[str] = Field(min_length=1, max_length=MAX_CATEGORIES)
    urgent: bool = False
    language: str = "en"
    channel: Literal["web", "phone"] = "web"
    receipt: str = Field(min_length=16, max_length=128)
    content: Envelope
    identity: Envelope | None = None

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

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - category_codes())
        if unknown:
            raise ValueError(f"unknown categories {unknown}; see `hotline categories`")
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
        for kind, envelope in (("content", self.content), ("identity", self.identity)):
            if envelope is not None and (envelope.kind, envelope.case_id) != (kind, self.case_id):
                raise ValueError(f"the {kind} envelope is not the {kind} of case {self.case_id}")
        return self

    def routing(self) -> dict[str, Any]:
        return routing_metadata(self.factory, self.categories, self.urgent, self.language)


class ReportAccepted(BaseModel):
    case_id: str
    status: Literal["received"] = "received"
