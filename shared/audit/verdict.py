"""The whole audit, in order, and its `Verdict`: what was checked and every failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hotline.shared.keys import b64encode
from hotline.shared.tlog.checkpoint import Checkpoint
from hotline.shared.tlog.note import CosignatureVerifier, Ed25519Verifier

from .failures import AuditFailure, Rule
from .policy import NonExposurePolicy, PolicyCounts
from .trust import (
    check_against_trusted,
    check_consistency,
    consistency_tiles,
    count_cosignatures,
    open_log_checkpoint,
)
from .walk import FetchMany, OnBundle, Progress, TreeWalk, walk_log


@dataclass
class Verdict:
    """The outcome of one audit: what was checked and every failure."""

    origin: str = ""
    size: int = 0
    root: str = ""
    trusted_size: int | None = None
    consistency_proved: bool = False
    cosignatures: int = 0
    quorum: int = 0
    bundles: int = 0
    tiles: int = 0
    policy: PolicyCounts = field(default_factory=PolicyCounts)
    failures: list[AuditFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "size": self.size,
            "root": self.root,
            "trusted_size": self.trusted_size,
            "consistency_proved": self.consistency_proved,
            "cosignatures": self.cosignatures,
            "quorum": self.quorum,
            "bundles": self.bundles,
            "tiles": self.tiles,
            "policy": vars(self.policy),
            "failures": [failure.to_json() for failure in self.failures],
        }

    def summary(self) -> list[str]:
        """The human verdict, a few lines; the last says OK or FAILED."""
        p = self.policy
        trusted = (
            "first verification: nothing trusted before, this checkpoint becomes your state"
            if self.trusted_size is None
            else f"consistent with the checkpoint of size {self.trusted_size} you trusted"
            + (" (consistency proof verified)" if self.consistency_proved else "")
        )
        lines = [
            f"log {self.origin}: checkpoint of size {self.size}, root {self.root}",
            f"history: {trusted}",
            f"tree: {p.entries} entries in {self.bundles} bundles re-hashed, {self.tiles} "
            "tiles compared, root recomputed",
            f"witnesses: {self.cosignatures} cosignature(s), quorum {self.quorum}",
            f"policy: {p.identity_envelopes} identity envelopes ({p.identity_recipients} "
            f"recipients) against {p.operator_keys} operator keys; {p.disclosures} "
            f"disclosures ({p.identity_disclosures} of identity); {p.factories} factories, "
            f"{p.factory_keys} factory keys",
            f"conversation: {p.messages_to_worker} messages to workers against their reply keys; "
            f"{p.answers_and_questions} answers and questions against operator keys; "
            f"{p.forwards} forwards",
            f"revocations: {p.sealed_envelopes} report and message envelopes against "
            f"{p.revoked_keys} revoked keys",
        ]
        if self.ok:
            verdict = (
                "VERDICT: OK - the log is intact, no identity reached a factory, messages to "
                "workers went to their reply keys only, answers to operator keys only, and "
                "nothing was sealed to a revoked key"
            )
            return [*lines, verdict]
        shown = [f"  FAIL {failure}" for failure in self.failures[:20]]
        more = len(self.failures) - len(shown)
        if more:
            shown.append(f"  ... and {more} more")
        return [*lines, *shown, f"VERDICT: FAILED ({len(self.failures)} failure(s))"]


def audit_log(
    *,
    note: bytes,
    log_key: Ed25519Verifier,
    fetch_many: FetchMany,
    trusted_note: str | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
    progress: Progress | None = None,
) -> tuple[Verdict, Checkpoint | None]:
    """Run every check against the served checkpoint `note`; return the verdict and the
    checkpoint (None when its signature failed).

    `trusted_note` is the checkpoint note the auditor trusted last (from its state file).
    """
    verdict = Verdict(quorum=quorum)
    try:
        checkpoint = open_log_checkpoint(note, log_key)
    except AuditFailure as failure:
        verdict.failures.append(failure)
        return verdict, None
    verdict.origin, verdict.size = checkpoint.origin, checkpoint.size
    verdict.root = b64encode(checkpoint.root_hash)
    try:
        trusted = None if trusted_note is None else open_log_checkpoint(trusted_note, log_key)
        verdict.trusted_size = None if trusted is None else trusted.size
        verdict.cosignatures = count_cosignatures(note, witnesses, quorum)
        check_against_trusted(trusted, checkpoint)
        policy = NonExposurePolicy()
        verdict.policy = policy.counts
        wanted = [t.index for t in consistency_tiles(trusted, checkpoint) if t.level == 0]
        walk = TreeWalk(checkpoint.size)
        try:
            result = walk_log(
                checkpoint.size, fetch_many, _feed(policy), progress, wanted, walk=walk
            )
        finally:
            verdict.bundles, verdict.tiles = walk.bundles, walk.tiles
        if result.root != checkpoint.root_hash:
            raise AuditFailure(
                Rule.ROOT,
                f"the entries served hash to root {b64encode(result.root)}, but the signed "
                f"checkpoint of size {checkpoint.size} says {verdict.root}",
            )
        verdict.consistency_proved = check_consistency(trusted, checkpoint, result.tiles)
        verdict.failures.extend(policy.finish())
    except AuditFailure as failure:
        verdict.failures.append(failure)
    return verdict, checkpoint


def _feed(policy: NonExposurePolicy) -> OnBundle:
    """An `on_bundle` that shows the policy every entry and keeps no tile."""

    def on_bundle(first: int, entries: list[bytes]) -> bool:
        for offset, leaf in enumerate(entries):
            policy.add(first + offset, leaf)
        return False

    return on_bundle
