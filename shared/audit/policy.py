"""The non-exposure policy, over every entry of the log:

1. identity envelopes are sealed to operator keys registered earlier in the log only;
2. identity is never disclosed to a factory manager or a factory's org;
3. no key registered for a factory ever receives identity.

Only identity is held to them: content, messages and attachments (photos, voice notes are
content) may be sealed to any key.

Each leaf is read as its typed `AuditEntry`; a leaf that is not one is a violation
(Rule.ENTRY): the log must not hide facts in malformed entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..roles import Role
from .entry import (
    AuditEntry,
    EnvelopeDisclosedEntry,
    KeyRegisteredEntry,
    MalformedEntryError,
    MessagePostedEntry,
    RegistryChangedEntry,
    ReportSubmittedEntry,
    parse_entry,
)
from .failures import AuditFailure, Rule

# The realm role of a factory's manager (hotline.shared.deps.Role, which this pure module
# does not import: it brings FastAPI and the service runtime with it).
FACTORY_MANAGER = Role.FACTORY_MANAGER


@dataclass
class PolicyCounts:
    """What the policy looked at, for the verdict."""

    entries: int = 0
    identity_envelopes: int = 0
    identity_recipients: int = 0
    disclosures: int = 0
    identity_disclosures: int = 0
    operator_keys: int = 0
    factory_keys: int = 0
    factories: int = 0


@dataclass(frozen=True)
class _IdentityUse:
    index: int
    what: str
    recipients: tuple[str, ...]


class NonExposurePolicy:
    """The three non-exposure rules over a whole log, entry by entry (`add`), then `finish`.

    Rules that need the whole log (which orgs are factories, which keys are a factory's) are
    decided in `finish`, so a registration anywhere in the log counts; "registered earlier"
    is decided as each entry arrives.
    """

    def __init__(self) -> None:
        self.counts = PolicyCounts()
        self.violations: list[AuditFailure] = []
        self._operator_keys: dict[str, int] = {}
        self._factory_keys: dict[str, int] = {}
        self._factories: dict[str, int] = {}
        self._key_orgs: dict[str, list[tuple[int, str]]] = {}
        self._uses: list[_IdentityUse] = []
        self._disclosures: list[tuple[int, str]] = []

    def add(self, index: int, leaf: bytes) -> None:
        """Evaluate entry `index` (its leaf: canonical JSON bytes), in log order."""
        self.counts.entries += 1
        try:
            entry = parse_entry(leaf)
        except MalformedEntryError as exc:
            self.violations.append(AuditFailure(Rule.ENTRY, str(exc), index))
            return
        self._register(index, entry)
        for what, recipients in _identity_envelopes(entry):
            if recipients:
                self._identity(index, what, recipients)
            else:
                self.violations.append(AuditFailure(Rule.ENTRY, f"{what} has no recipient", index))
        if isinstance(entry, EnvelopeDisclosedEntry):
            self._disclosure(index, entry)

    def finish(self) -> list[AuditFailure]:
        """Decide the whole-log rules; return every violation, in entry order."""
        self.counts.operator_keys = len(self._operator_keys)
        self.counts.factory_keys = len(self._factory_keys)
        self.counts.factories = len(self._factories)
        for use in self._uses:
            for key in use.recipients:
                if key in self._factory_keys:
                    self.violations.append(
                        AuditFailure(
                            Rule.NO_FACTORY_KEY,
                            f"{use.what} sealed to {key}, a key registered for a factory at "
                            f"entry {self._factory_keys[key]}",
                            use.index,
                        )
                    )
        for index, org in self._disclosures:
            if org in self._factories:
                self.violations.append(
                    AuditFailure(
                        Rule.NO_FACTORY_DISCLOSURE,
                        f"identity disclosed to org {org}, a factory (added at entry "
                        f"{self._factories[org]})",
                        index,
                    )
                )
        self.violations.sort(key=lambda failure: failure.index or 0)
        return self.violations

    def _register(self, index: int, entry: AuditEntry) -> None:
        """Learn operator keys, factory keys and factories from registry entries."""
        if isinstance(entry, KeyRegisteredEntry):
            self._key_orgs.setdefault(entry.key_id, []).append((index, entry.org))
            if entry.org_kind == "operator":
                self._operator_keys.setdefault(entry.key_id, index)
            elif entry.org_kind == "factory":
                self._factory_keys.setdefault(entry.key_id, index)
                self._factories.setdefault(entry.org, index)
        elif isinstance(entry, RegistryChangedEntry) and entry.change == "factory-added":
            if entry.factory is None:
                message = "a factory-added registry change names no factory"
                self.violations.append(AuditFailure(Rule.ENTRY, message, index))
            else:
                self._factories.setdefault(entry.factory, index)

    def _identity(self, index: int, what: str, recipients: tuple[str, ...]) -> None:
        """Rule 1 at once (operator keys registered before `index`); keep the use for rule 3."""
        self.counts.identity_envelopes += 1
        self.counts.identity_recipients += len(recipients)
        for key in recipients:
            if key not in self._operator_keys:
                self.violations.append(
                    AuditFailure(
                        Rule.OPERATOR_ONLY,
                        f"{what} sealed to {key}, which is not an operator key registered "
                        f"earlier in the log ({self._describe_key(key)})",
                        index,
                    )
                )
        self._uses.append(_IdentityUse(index, what, recipients))

    def _disclosure(self, index: int, entry: EnvelopeDisclosedEntry) -> None:
        """Rule 2: identity never handed to a factory manager (org checked in `finish`)."""
        self.counts.disclosures += 1
        if entry.envelope_class != "identity":
            return
        self.counts.identity_disclosures += 1
        role, org = entry.principal.role, entry.principal.org
        if role == FACTORY_MANAGER:
            self.violations.append(
                AuditFailure(
                    Rule.NO_FACTORY_DISCLOSURE,
                    f"identity disclosed to a principal with role {FACTORY_MANAGER} (org {org})",
                    index,
                )
            )
        if org is not None:
            self._disclosures.append((index, org))

    def _describe_key(self, key: str) -> str:
        """Where `key` was registered so far, for a violation message."""
        seen = self._key_orgs.get(key)
        if not seen:
            return "never registered so far"
        return "registered " + ", ".join(f"for {org} at entry {i}" for i, org in seen)


def _identity_envelopes(entry: AuditEntry) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(description, recipient key ids) of every identity envelope the entry concerns."""
    if isinstance(entry, ReportSubmittedEntry | MessagePostedEntry):
        for envelope in entry.envelopes:
            if envelope.envelope_class == "identity":
                yield f"identity envelope of {entry.type}", tuple(envelope.recipients)
    if isinstance(entry, EnvelopeDisclosedEntry) and entry.envelope_class == "identity":
        yield "disclosed identity envelope", tuple(entry.recipients)
