"""The non-exposure policy, over every entry of the log.

Identity (rules 1-3):

1. identity envelopes are sealed to operator keys registered earlier in the log only;
2. identity is never disclosed to a factory manager or a factory's org;
3. no key registered for a factory ever receives identity.

The conversation (shared/messages.py: who writes which kind, to whom it is sealed):

4. every message to the worker (acknowledgement, reply, feedback, forward) is sealed to
   exactly one key, the reply key of its case's report (earlier in the log), and that key
   is registered for no organisation;
5. every envelope of an answer or a question is sealed to operator keys registered earlier
   only;
6. each kind is written by its author role only; a decline carries no envelope and every
   other message one; only an answer carries attachments; a forward or decline names a
   question of the same case earlier in the log;
7. every forward's envelope was disclosed to the worker (an `envelope.disclosed` entry of
   class message, principal role worker, same case).

Revocation (issue 19: a buyer's key is rotated, the old one revoked):

8. no envelope of a report or a message (content, identity, attachment, message) is sealed
   to a key revoked earlier in the log. Disclosures are not held to it: an envelope sealed
   before the revocation may still be handed out (a buyer re-reads an old digest with its
   old key), and what it was sealed to was checked when it was reported.

Retention (issue 18: a closed case's envelopes are deleted under its retention policy):

9. no envelope is disclosed after an `envelopes.deleted` entry that lists its hash
   (rule no-hand-out-after-deletion); the violation names that entry. A disclosure earlier
   in the log than the deletion is a hand-out that happened while the envelope existed.

A report's content and attachments (photos, voice notes are content) may be sealed to any
key that is not revoked: they go to the buyers, and the identity rules do not hold them.

Each leaf is read as its typed `AuditEntry`; a leaf that is not one is a violation
(Rule.ENTRY): the log must not hide facts in malformed entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..messages import (
    DECISIONS,
    KINDS_BY_AUTHOR,
    TO_OPERATORS,
    TO_WORKER,
    WITHOUT_ENVELOPE,
    WORKER,
)
from ..roles import Role
from .entry import (
    AuditEntry,
    EnvelopeDisclosedEntry,
    EnvelopesDeletedEntry,
    EnvelopeSummary,
    KeyRegisteredEntry,
    KeyRevokedEntry,
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
    messages_to_worker: int = 0  # acknowledgements, replies, feedback and forwards
    answers_and_questions: int = 0
    forwards: int = 0
    revoked_keys: int = 0
    sealed_envelopes: int = 0  # of reports and messages, each checked against revocations
    deleted_envelopes: int = 0  # listed by envelopes.deleted entries (retention)


@dataclass(frozen=True)
class _IdentityUse:
    index: int
    what: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class _ToWorker:
    """An envelope of a message to the worker, and its case's report as seen so far."""

    index: int
    what: str
    recipients: tuple[str, ...]
    case: str
    report: tuple[int, str | None] | None  # (entry index, reply key id) of the report


@dataclass(frozen=True)
class _Forward:
    index: int
    case: str
    envelope_hash: str


class NonExposurePolicy:
    """The non-exposure rules over a whole log, entry by entry (`add`), then `finish`.

    Rules that need the whole log (which orgs are factories, which keys are a factory's or
    any org's, which envelopes were disclosed) are decided in `finish`, so a registration
    or disclosure anywhere in the log counts; "registered earlier" and "earlier in the log"
    are decided as each entry arrives.
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
        self._reports: dict[str, tuple[int, str | None]] = {}  # case -> (index, reply key)
        self._questions: dict[str, tuple[int, str]] = {}  # message id -> (index, case)
        self._to_worker: list[_ToWorker] = []
        self._forwards: list[_Forward] = []
        self._disclosed_to_worker: set[tuple[str, str]] = set()  # (case, envelope hash)
        self._revoked: dict[str, tuple[int, str]] = {}  # key id -> (index, org) of revocation
        self._deleted: dict[str, int] = {}  # envelope hash -> index of its envelopes.deleted

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
        if isinstance(entry, ReportSubmittedEntry | MessagePostedEntry):
            self._not_revoked(index, entry)
        if isinstance(entry, ReportSubmittedEntry):
            self._reports.setdefault(entry.subject, (index, entry.reply_key))
        elif isinstance(entry, MessagePostedEntry):
            self._message(index, entry)
        elif isinstance(entry, EnvelopeDisclosedEntry):
            self._not_deleted(index, entry)
            self._disclosure(index, entry)
        elif isinstance(entry, EnvelopesDeletedEntry):
            for envelope in entry.envelopes:
                if envelope.hash not in self._deleted:
                    self._deleted[envelope.hash] = index
                    self.counts.deleted_envelopes += 1

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
        for sent in self._to_worker:
            problem = self._reply_key_problem(sent)
            if problem is not None:
                failure = AuditFailure(Rule.REPLY_KEY_ONLY, f"{sent.what} {problem}", sent.index)
                self.violations.append(failure)
        for forward in self._forwards:
            if (forward.case, forward.envelope_hash) not in self._disclosed_to_worker:
                self.violations.append(
                    AuditFailure(
                        Rule.FORWARDS_DISCLOSED,
                        f"the forward's envelope {forward.envelope_hash} was never disclosed "
                        f"to the worker (no envelope.disclosed entry of class message, role "
                        f"{WORKER}, for case {forward.case})",
                        forward.index,
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
        elif isinstance(entry, KeyRevokedEntry):
            if entry.key_id not in self._revoked:
                self._revoked[entry.key_id] = (index, entry.org)
                self.counts.revoked_keys += 1
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

    def _not_revoked(self, index: int, entry: ReportSubmittedEntry | MessagePostedEntry) -> None:
        """Rule 8 at once: no envelope lists a key revoked before `index` (revocations are
        learnt in log order, so every one known here is earlier)."""
        for envelope in entry.envelopes:
            self.counts.sealed_envelopes += 1
            for key in envelope.recipients:
                revoked = self._revoked.get(key)
                if revoked is None:
                    continue
                at, org = revoked
                what = _describe_envelope(entry, envelope)
                self.violations.append(
                    AuditFailure(
                        Rule.NOT_REVOKED,
                        f"{what} is sealed to {key}, a key of {org} revoked at entry {at}",
                        index,
                    )
                )

    def _not_deleted(self, index: int, entry: EnvelopeDisclosedEntry) -> None:
        """Rule 9 at once: the disclosed envelope was not deleted earlier in the log."""
        deleted_at = self._deleted.get(entry.envelope_hash)
        if deleted_at is not None:
            self.violations.append(
                AuditFailure(
                    Rule.NO_HAND_OUT_AFTER_DELETION,
                    f"the {entry.envelope_class} envelope {entry.envelope_hash} of case "
                    f"{entry.subject} is disclosed to role {entry.principal.role} after its "
                    f"deletion at entry {deleted_at}",
                    index,
                )
            )

    def _disclosure(self, index: int, entry: EnvelopeDisclosedEntry) -> None:
        """Rule 2: identity never handed to a factory manager (org checked in `finish`);
        keep what was disclosed to the worker for rule 7."""
        self.counts.disclosures += 1
        if entry.envelope_class == "message" and entry.principal.role == WORKER:
            self._disclosed_to_worker.add((entry.subject, entry.envelope_hash))
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

    def _message(self, index: int, entry: MessagePostedEntry) -> None:
        """Rules 5 and 6 at once; keep what rules 4 and 7 decide in `finish`."""
        for problem in self._shape_problems(entry):
            self.violations.append(AuditFailure(Rule.KIND_MATCHES_AUTHOR, problem, index))
        if entry.kind == "question":
            self._questions.setdefault(entry.message_id, (index, entry.subject))
        if entry.kind == "forward":
            self.counts.forwards += 1
            for envelope in _of_class(entry, "message"):
                self._forwards.append(_Forward(index, entry.subject, envelope.hash))
        if entry.kind in TO_WORKER:
            self.counts.messages_to_worker += 1
            report = self._reports.get(entry.subject)
            for envelope in entry.envelopes:
                what = _describe_envelope(entry, envelope)
                recipients = tuple(envelope.recipients)
                self._to_worker.append(_ToWorker(index, what, recipients, entry.subject, report))
        elif entry.kind in TO_OPERATORS:
            self.counts.answers_and_questions += 1
            for envelope in entry.envelopes:
                self._to_operators(index, _describe_envelope(entry, envelope), envelope)

    def _shape_problems(self, entry: MessagePostedEntry) -> Iterator[str]:
        """Rule 6: what is wrong with who wrote the message and what it carries."""
        kind, role = entry.kind, entry.author_role
        allowed = KINDS_BY_AUTHOR.get(role)
        if allowed is None:
            yield f"a message ({kind}) by author role {role}, which writes no messages"
        elif kind not in allowed:
            yield f"a {kind} by author role {role}, which writes only {', '.join(sorted(allowed))}"
        messages = len(_of_class(entry, "message"))
        if kind in WITHOUT_ENVELOPE and messages:
            yield f"a {kind} carries a message envelope (a {kind} carries none)"
        elif kind not in WITHOUT_ENVELOPE and messages != 1:
            yield f"the {kind} carries {messages} message envelopes, not one"
        if _of_class(entry, "attachment") and kind != "answer":
            yield f"the {kind} carries attachments (only a worker's answer does)"
        for other in sorted(
            {e.envelope_class for e in entry.envelopes} - {"message", "attachment"}
        ):
            yield f"the {kind} carries an envelope of class {other}"
        question = entry.in_reply_to
        if kind not in DECISIONS:
            if question is not None:
                yield f"the {kind} names question {question} (only a forward or decline does)"
        elif question is None:
            yield f"the {kind} names no question"
        elif question not in self._questions:
            yield f"the {kind} decides {question}, which is no question earlier in the log"
        elif self._questions[question][1] != entry.subject:
            at, case = self._questions[question]
            yield f"the {kind} decides question {question} of another case ({case}, entry {at})"

    def _to_operators(self, index: int, what: str, envelope: EnvelopeSummary) -> None:
        """Rule 5: sealed to operator keys registered before `index`, and to nothing else."""
        if not envelope.recipients:
            self.violations.append(
                AuditFailure(Rule.OPERATOR_KEYS_ONLY, f"{what} is sealed to no key", index)
            )
        for key in envelope.recipients:
            if key not in self._operator_keys:
                self.violations.append(
                    AuditFailure(
                        Rule.OPERATOR_KEYS_ONLY,
                        f"{what} is sealed to {key}, which is not an operator key registered "
                        f"earlier in the log ({self._describe_key(key)})",
                        index,
                    )
                )

    def _reply_key_problem(self, sent: _ToWorker) -> str | None:
        """Rule 4 for one envelope, with the whole log's registrations: what is wrong, if
        anything (the caller prefixes the envelope's description)."""
        sealed_to = ", ".join(f"{key} ({self._whose(key)})" for key in sent.recipients)
        sealed_to = sealed_to or "no key"
        if sent.report is None:
            return (
                f"is sealed to {sealed_to}, but no report of case {sent.case} earlier in the "
                "log gives the worker's reply key"
            )
        at, reply_key = sent.report
        if reply_key is None:
            return f"is sealed to {sealed_to}, but the case's report (entry {at}) has no reply key"
        if sent.recipients != (reply_key,):
            return (
                f"is sealed to {sealed_to}, not to the case's reply key {reply_key} alone "
                f"(report at entry {at})"
            )
        if reply_key in self._key_orgs:
            return (
                f"is sealed to the case's reply key {reply_key} (report at entry {at}), but "
                f"that key is {self._whose(reply_key)}: a worker's reply key is no org's"
            )
        return None

    def _whose(self, key: str) -> str:
        """Whose `key` is over the whole log, saying "a factory" when it is one's."""
        seen = self._key_orgs.get(key)
        if not seen:
            return "registered for no organisation"
        where = [
            f"for {org}{', a factory,' if org in self._factories else ''} at entry {i}"
            for i, org in seen
        ]
        return "registered " + ", ".join(where)

    def _describe_key(self, key: str) -> str:
        """Where `key` was registered so far, for a violation message."""
        seen = self._key_orgs.get(key)
        if not seen:
            return "never registered so far"
        return "registered " + ", ".join(f"for {org} at entry {i}" for i, org in seen)


def _of_class(entry: MessagePostedEntry, envelope_class: str) -> list[EnvelopeSummary]:
    return [e for e in entry.envelopes if e.envelope_class == envelope_class]


def _describe_envelope(
    entry: ReportSubmittedEntry | MessagePostedEntry, envelope: EnvelopeSummary
) -> str:
    """How a violation names an envelope of a message ("the message envelope of the reply")
    or of a report ("the attachment envelope of the report")."""
    of = "report" if isinstance(entry, ReportSubmittedEntry) else entry.kind
    return f"the {envelope.envelope_class} envelope of the {of}"


def _identity_envelopes(entry: AuditEntry) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(description, recipient key ids) of every identity envelope the entry concerns."""
    if isinstance(entry, ReportSubmittedEntry | MessagePostedEntry):
        for envelope in entry.envelopes:
            if envelope.envelope_class == "identity":
                yield f"identity envelope of {entry.type}", tuple(envelope.recipients)
    if isinstance(entry, EnvelopeDisclosedEntry) and entry.envelope_class == "identity":
        yield "disclosed identity envelope", tuple(entry.recipients)
