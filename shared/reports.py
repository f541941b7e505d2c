"""The report as it crosses the wire: the submission body and its routing metadata.

Shared by the submitting clients (CLI, browser page) and intake, so that both bind the same
routing metadata into the envelopes' associated data.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class ReportCreate(BaseModel):
    """POST /api/reports: routing metadata in clear, content and identity as envelopes."""

    model_config = ConfigDict(extra="forbid")

    case_id: str
    factory: str = Field(min_length=2, max_length=32)
    categories: list[str] = Field(min_length=1, max_length=MAX_CATEGORIES)
    urgent: bool = False
    language: str = "en"
    channel: Literal["web", "phone"] = "web"
    receipt: str = Field(min_length=16, max_length=128)
    content: dict[str, Any]
    identity: dict[str, Any] | None = None

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
        if not LANGUAGE.match(value):
            raise ValueError("language must be a BCP 47 tag such as 'en' or 'zh-Hans'")
        return value

    def routing(self) -> dict[str, Any]:
        return routing_metadata(self.factory, self.categories, self.urgent, self.language)


class ReportAccepted(BaseModel):
    case_id: str
    status: Literal["received"] = "received"
