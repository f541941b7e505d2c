"""The auditor's checks of the audit log, pure: what a compliance officer's machine verifies.

Nothing here does I/O. The caller passes a `FetchMany` (paths in, contents out, `None` for a
resource the log does not serve) and decides how to fetch (concurrency, progress, HTTP); the
service's start-up check passes one that reads its own store. The checks:

1. The checkpoint (C2SP tlog-checkpoint) is signed by the log's key; its origin is the key's
   name. Witness cosignatures (C2SP tlog-cosignature) are counted against a quorum.
2. Against the checkpoint the auditor trusted last: a smaller tree is a rollback, the same
   size with another root is a fork, and a larger tree must be consistent with it (RFC 9162
   consistency proof computed from tiles).
3. `TreeWalk`: every entry bundle is downloaded, every entry re-hashed, every tile of every
   level compared with the hashes recomputed from the entries, and the root recomputed.
4. `NonExposurePolicy` over every entry: identity envelopes are sealed to operator keys
   registered earlier in the log only; identity is never disclosed to a factory manager or a
   factory's org; no key registered for a factory ever receives identity.

Every failure is an `AuditFailure` naming its rule and, where there is one, the entry index.
Integrity failures stop the walk (nothing after them can be trusted); policy violations are
all collected. `prove`/`check-proof` files are built and checked here too
(`build_case_proof`, `check_case_proof`).

Entry fields the policy reads (see services/audit-log/entries.py, which writes them):
`type`; `envelopes: [{class, recipients}]`; for `envelope.disclosed` `class`, `recipients`,
`principal: {role, org}`; for `key.registered` `key_id`, `org`, `org_kind`; for
`registry.changed` `change`, `factory`; `subject` for case proofs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .events import EventType
from .tlog.checkpoint import Checkpoint, open_checkpoint
from .tlog.compact import CompactRange, range_nodes, root_from_leaf_hashes
from .tlog.errors import NoteError, TlogError, UnverifiedNoteError
from .tlog.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash
from .tlog.note import CosignatureVerifier, Ed25519Verifier, open_note
from .tlog.proof import consistency_nodes, consistency_proof, inclusion_proof
from .tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    EntryBundle,
    Tile,
    decode_bundle,
    entries_path,
    hashes_from_tiles,
    new_tiles,
    tile_hashes,
    tile_path,
    tile_width,
    tiles_for_nodes,
)
from .tlog.verify import verify_consistency, verify_inclusion

FetchMany = Callable[[Sequence[str]], Iterable[bytes | None]]
"""Returns the contents of each path, in order (lazily is fine); None when it is not served."""

Progress = Callable[[int], None]
"""Called with the number of entries checked since the previous call."""

PROOF_FORMAT = "hotline-audit-proof/v1"

# Rule names: what a failure says was broken (stable: scripts read them from --json).
RULE_SIGNATURE = "checkpoint-signature"
RULE_COSIGNATURE = "cosignature-valid"
RULE_QUORUM = "witness-quorum"
RULE_ROLLBACK = "no-rollback"
RULE_FORK = "no-fork"
RULE_MISSING = "resource-served"
RULE_BUNDLE = "bundle-well-formed"
RULE_TILE = "tile-matches-entries"
RULE_ROOT = "root-matches-checkpoint"
RULE_ENTRY = "entry-well-formed"
RULE_OPERATOR_ONLY = "identity-sealed-to-operator-keys-registered-earlier"
RULE_NO_FACTORY_DISCLOSURE = "no-identity-disclosure-to-factory"
RULE_NO_FACTORY_KEY = "no-factory-key-receives-identity"
RULE_PROOF = "inclusion-proof"

FACTORY_MANAGER = "factory-manager"


class AuditFailure(Exception):
    """One broken rule: its name, the entry index when there is one, and what is wrong."""

    def __init__(self, rule: str, message: str, index: int | None = None) -> None:
        where = f"entry {index}: " if index is not None else ""
        super().__init__(f"{where}{message} [rule {rule}]")
        self.rule = rule
        self.index = index
        self.detail = message

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "index": self.index, "message": self.detail}


# --- checkpoints ----------------------------------------------------------------------------


def open_log_checkpoint(note: bytes | str, log_key: Ed25519Verifier) -> Checkpoint:
    """Return the checkpoint of a signed note from the log whose origin is `log_key`'s name.

    Raises AuditFailure(RULE_SIGNATURE) when the note is malformed, unsigned by that key,
    badly signed, or names another origin.
    """
    try:
        checkpoint, _ = open_checkpoint(note, log_key.name, [log_key])
    except TlogError as exc:
        raise AuditFailure(RULE_SIGNATURE, f"checkpoint refused: {exc}") from None
    return checkpoint


def count_cosignatures(
    note: bytes | str, witnesses: Sequence[CosignatureVerifier], quorum: int
) -> int:
    """Return how many of `witnesses` validly cosigned `note`; require at least `quorum`.

    Requires 0 <= quorum <= len(witnesses). Raises AuditFailure(RULE_COSIGNATURE) when a
    listed witness's cosignature does not verify, AuditFailure(RULE_QUORUM) when too few.
    """
    if not 0 <= quorum <= len(witnesses):
        raise ValueError(f"quorum {quorum} needs 0 to {len(witnesses)} witnesses")
    if not witnesses:
        return 0
    try:
        count = len(open_note(note, witnesses).signatures)
    except UnverifiedNoteError:
        count = 0
    except NoteError as exc:
        raise AuditFailure(RULE_COSIGNATURE, f"witness cosignature refused: {exc}") from None
    if count < quorum:
        raise AuditFailure(
            RULE_QUORUM,
            f"checkpoint carries {count} cosignature(s) from the given witnesses, "
            f"{quorum} required",
        )
    return count


def check_against_trusted(trusted: Checkpoint | None, current: Checkpoint) -> None:
    """Refuse a rollback (smaller tree) or a fork at the same size; bigger trees need a proof.

    Requires both checkpoints to be verified already.
    """
    if trusted is None:
        return
    if current.size < trusted.size:
        raise AuditFailure(
            RULE_ROLLBACK,
            f"the log shows size {current.size}, smaller than the size {trusted.size} you "
            "trusted before: the log was rolled back or forked",
        )
    if current.size == trusted.size and current.root_hash != trusted.root_hash:
        raise AuditFailure(
            RULE_FORK,
            f"FORK: two different checkpoints of size {current.size}: the log now shows "
            f"root {_b64(current.root_hash)}, you trusted root {_b64(trusted.root_hash)}",
        )


def consistency_tiles(trusted: Checkpoint | None, current: Checkpoint) -> list[Tile]:
    """The tiles (of the current tree) that the consistency proof from `trusted` needs."""
    if trusted is None or not 0 < trusted.size < current.size:
        return []
    return tiles_for_nodes(consistency_nodes(trusted.size, current.size).ids, current.size)


def check_consistency(
    trusted: Checkpoint | None, current: Checkpoint, tiles: Mapping[Tile, bytes]
) -> bool:
    """Prove from `tiles` that `current` extends `trusted`; return True if a proof was needed.

    Requires `tiles` to hold every tile of `consistency_tiles(trusted, current)`. Raises
    AuditFailure(RULE_FORK) when the proof does not rebuild both roots.
    """
    if trusted is None or not 0 < trusted.size < current.size:
        return False
    size1, size2 = trusted.size, current.size
    try:
        proof = consistency_proof(
            size1, size2, lambda nodes: hashes_from_tiles(nodes, tiles, size2)
        )
        verify_consistency(size1, size2, proof, trusted.root_hash, current.root_hash)
    except TlogError as exc:
        raise AuditFailure(
            RULE_FORK,
            f"FORK: the tree of size {size2} is not an extension of the checkpoint of size "
            f"{size1} you trusted ({exc})",
        ) from None
    return True


# --- the tree, recomputed from the entries --------------------------------------------------


def bundle_paths(size: int) -> list[tuple[EntryBundle, Tile]]:
    """Every entry bundle of a tree of `size` with its level-0 tile, in order."""
    return [
        (EntryBundle(n, tile_width(0, n, size)), Tile(0, n, tile_width(0, n, size)))
        for n in range(_bundle_count(size))
    ]


def upper_tiles(size: int) -> list[Tile]:
    """Every tile of level 1 and above in a tree of `size` (full and partial), level order."""
    return [tile for tile in new_tiles(0, size) if tile.level > 0]


class TreeWalk:
    """Recompute the tree of `size` leaves from its entry bundles and check every tile.

    Feed `add_bundle` with bundles 0, 1, ... in order, each with its level-0 tile; then check
    each tile of `upper_tiles(size)` with `check_tile`; then `root()`. Any disagreement raises
    AuditFailure naming the entry (or tile) and what differs.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"tree size must be >= 0, got {size}")
        self.size = size
        self.bundles = 0
        self.tiles = 0
        # Hashes at Merkle level 8L for L >= 1 (roots of full tiles one level below); level 0
        # keeps only the last bundle's leaf hashes: the right border needs nothing else.
        self._levels: list[list[bytes]] = [[], []]
        self._last_leaves: list[bytes] = []

    def add_bundle(self, bundle: EntryBundle, data: bytes, tile: bytes) -> list[bytes]:
        """Check bundle `bundle` (the next one) against its level-0 tile; return its entries."""
        if self.bundles >= _bundle_count(self.size) or bundle != EntryBundle(
            self.bundles, tile_width(0, self.bundles, self.size)
        ):
            raise ValueError(f"{entries_path(bundle)} is not the next bundle of size {self.size}")
        first = bundle.index * TILE_WIDTH
        try:
            entries = decode_bundle(data, bundle.width)
        except TlogError as exc:
            raise AuditFailure(RULE_BUNDLE, f"{entries_path(bundle)}: {exc}", first) from None
        leaves = [leaf_hash(entry) for entry in entries]
        self._check_level0(Tile(0, bundle.index, bundle.width), tile, leaves, first)
        if bundle.width == TILE_WIDTH:
            self._levels[1].append(_subtree_root(leaves))
        self._last_leaves = leaves
        self.bundles += 1
        self.tiles += 1
        return entries

    def _check_level0(self, tile: Tile, data: bytes, leaves: list[bytes], first: int) -> None:
        """Raise unless the served level-0 tile holds exactly the recomputed leaf hashes."""
        if data == b"".join(leaves):
            return
        served = self._split(tile, data)
        for offset, (computed, held) in enumerate(zip(leaves, served, strict=True)):
            if computed != held:
                raise AuditFailure(
                    RULE_TILE,
                    f"the entry served hashes to {computed.hex()}, but {tile_path(tile)} "
                    f"holds {held.hex()}: the entries and the tiles disagree",
                    first + offset,
                )

    def check_tile(self, tile: Tile, data: bytes) -> None:
        """Check one tile of level >= 1 against the hashes recomputed from the entries.

        Requires every bundle to have been added.
        """
        self._require_complete()
        served = self._split(tile, data)
        start = tile.index * TILE_WIDTH
        computed = self._level(tile.level)[start : start + tile.width]
        for offset, (mine, held) in enumerate(zip(computed, served, strict=True)):
            if mine != held:
                node = start + offset
                first = node << (TILE_HEIGHT * tile.level)
                raise AuditFailure(
                    RULE_TILE,
                    f"{tile_path(tile)} holds {held.hex()} for the subtree of entries "
                    f"{first}..{first + (1 << (TILE_HEIGHT * tile.level)) - 1}, but those "
                    f"entries hash to {mine.hex()}",
                )
        self.tiles += 1

    def root(self) -> bytes:
        """The RFC 9162 root of the recomputed tree. Requires every bundle to be added."""
        self._require_complete()
        if self.size == 0:
            return EMPTY_ROOT
        hashes = []
        for node in range_nodes(0, self.size):
            level, shift = divmod(node.level, TILE_HEIGHT)
            begin = node.index << shift
            if level == 0:
                offset = begin - (self.size >> TILE_HEIGHT) * TILE_WIDTH
                hashes.append(_subtree_root(self._last_leaves[offset : offset + (1 << shift)]))
            else:
                hashes.append(_subtree_root(self._level(level)[begin : begin + (1 << shift)]))
        return CompactRange(self.size, hashes).root()

    def _level(self, level: int) -> list[bytes]:
        """Hashes at Merkle level 8 * `level` (level >= 1), computed on first use."""
        while len(self._levels) <= level:
            below = self._levels[-1]
            full = len(below) // TILE_WIDTH
            self._levels.append(
                [_subtree_root(below[i * TILE_WIDTH : (i + 1) * TILE_WIDTH]) for i in range(full)]
            )
        return self._levels[level]

    def _split(self, tile: Tile, data: bytes) -> list[bytes]:
        try:
            return tile_hashes(tile, data)
        except TlogError as exc:
            raise AuditFailure(RULE_TILE, f"{tile_path(tile)}: {exc}") from None

    def _require_complete(self) -> None:
        if self.bundles != _bundle_count(self.size):
            raise ValueError(f"only {self.bundles} bundles of the tree were added")


def _subtree_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect run of node hashes (a subtree), hashed level by level."""
    return root_from_leaf_hashes(hashes)


def _bundle_count(size: int) -> int:
    return -(-size // TILE_WIDTH)


# --- the non-exposure policy ----------------------------------------------------------------


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

    def add(self, index: int, raw: bytes) -> None:
        """Evaluate entry `index` (its canonical JSON bytes), in log order."""
        self.counts.entries += 1
        try:
            entry = _entry_object(raw)
            self._register(index, entry)
            for what, recipients in _identity_envelopes(entry):
                self._identity(index, what, recipients)
            if entry["type"] == EventType.ENVELOPE_DISCLOSED:
                self._disclosure(index, entry)
        except _Malformed as exc:
            self.violations.append(AuditFailure(RULE_ENTRY, str(exc), index))

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
                            RULE_NO_FACTORY_KEY,
                            f"{use.what} sealed to {key}, a key registered for a factory at "
                            f"entry {self._factory_keys[key]}",
                            use.index,
                        )
                    )
        for index, org in self._disclosures:
            if org in self._factories:
                self.violations.append(
                    AuditFailure(
                        RULE_NO_FACTORY_DISCLOSURE,
                        f"identity disclosed to org {org}, a factory (added at entry "
                        f"{self._factories[org]})",
                        index,
                    )
                )
        self.violations.sort(key=lambda failure: failure.index or 0)
        return self.violations

    def _register(self, index: int, entry: Mapping[str, Any]) -> None:
        """Learn operator keys, factory keys and factories from registry entries."""
        if entry["type"] == EventType.KEY_REGISTERED:
            key, org, kind = (_text(entry, name) for name in ("key_id", "org", "org_kind"))
            self._key_orgs.setdefault(key, []).append((index, org))
            if kind == "operator":
                self._operator_keys.setdefault(key, index)
            elif kind == "factory":
                self._factory_keys.setdefault(key, index)
                self._factories.setdefault(org, index)
        elif entry["type"] == EventType.REGISTRY_CHANGED and entry.get("change") == "factory-added":
            self._factories.setdefault(_text(entry, "factory"), index)

    def _identity(self, index: int, what: str, recipients: tuple[str, ...]) -> None:
        """Rule 1 at once (operator keys registered before `index`); keep the use for rule 3."""
        self.counts.identity_envelopes += 1
        self.counts.identity_recipients += len(recipients)
        for key in recipients:
            registered = self._operator_keys.get(key)
            if registered is None:
                self.violations.append(
                    AuditFailure(
                        RULE_OPERATOR_ONLY,
                        f"{what} sealed to {key}, which is not an operator key registered "
                        f"earlier in the log ({self._describe_key(key)})",
                        index,
                    )
                )
        self._uses.append(_IdentityUse(index, what, recipients))

    def _disclosure(self, index: int, entry: Mapping[str, Any]) -> None:
        """Rule 2: identity never handed to a factory manager (org checked in `finish`)."""
        self.counts.disclosures += 1
        if entry.get("class") != "identity":
            return
        self.counts.identity_disclosures += 1
        principal = entry.get("principal")
        if not isinstance(principal, dict):
            raise _Malformed("envelope.disclosed without a principal")
        role, org = principal.get("role"), principal.get("org")
        if role == FACTORY_MANAGER:
            self.violations.append(
                AuditFailure(
                    RULE_NO_FACTORY_DISCLOSURE,
                    f"identity disclosed to a principal with role {FACTORY_MANAGER} (org {org})",
                    index,
                )
            )
        if isinstance(org, str):
            self._disclosures.append((index, org))

    def _describe_key(self, key: str) -> str:
        """Where `key` was registered so far, for a violation message."""
        seen = self._key_orgs.get(key)
        if not seen:
            return "never registered so far"
        return "registered " + ", ".join(f"for {org} at entry {i}" for i, org in seen)


class _Malformed(Exception):
    """An entry the policy cannot read: the log must not hide facts in malformed entries."""


def _entry_object(raw: bytes) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Malformed("entry is not JSON") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise _Malformed("entry is not a JSON object with a type")
    return entry


def _text(entry: Mapping[str, Any], name: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str):
        raise _Malformed(f"{entry['type']} entry has no text field {name!r}")
    return value


def _identity_envelopes(entry: Mapping[str, Any]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(description, recipient key ids) of every identity envelope the entry concerns."""
    envelopes = entry.get("envelopes", [])
    if not isinstance(envelopes, list):
        raise _Malformed("envelopes is not a list")
    for envelope in envelopes:
        if not isinstance(envelope, dict):
            raise _Malformed("an envelope summary is not an object")
        if envelope.get("class") == "identity":
            yield f"identity envelope of {entry['type']}", _recipients(envelope)
    if entry["type"] == EventType.ENVELOPE_DISCLOSED and entry.get("class") == "identity":
        yield "disclosed identity envelope", _recipients(entry)


def _recipients(holder: Mapping[str, Any]) -> tuple[str, ...]:
    recipients = holder.get("recipients")
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise _Malformed("recipients is not a list of key ids")
    if not recipients:
        raise _Malformed("an identity envelope with no recipient")
    return tuple(recipients)


# --- the whole audit ------------------------------------------------------------------------


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
        ]
        if self.ok:
            return [*lines, "VERDICT: OK - the log is intact and no identity reached a factory"]
        shown = [f"  FAIL {failure}" for failure in self.failures[:20]]
        more = len(self.failures) - len(shown)
        if more:
            shown.append(f"  ... and {more} more")
        return [*lines, *shown, f"VERDICT: FAILED ({len(self.failures)} failure(s))"]


@dataclass
class WalkResult:
    """What `walk_log` kept: the root, and the tiles asked to be kept (by `keep`)."""

    root: bytes
    tiles: dict[Tile, bytes]


def walk_log(
    size: int,
    fetch_many: FetchMany,
    on_bundle: Callable[[int, list[bytes]], bool],
    progress: Progress | None = None,
    keep_level0: Iterable[int] = (),
    walk: TreeWalk | None = None,
) -> WalkResult:
    """Download and check the whole tree of `size`; return its root and the kept tiles.

    `on_bundle(first index, entries)` sees every entry in order; when it returns True that
    bundle's level-0 tile is kept, as are those in `keep_level0`, the last one and every
    upper tile (together: what inclusion and consistency proofs into those bundles need).
    Raises AuditFailure on the first integrity failure (a resource not served, a malformed
    bundle, a tile that disagrees with the entries).
    """
    walk = walk or TreeWalk(size)
    pairs = bundle_paths(size)
    wanted = set(keep_level0)
    kept: dict[Tile, bytes] = {}
    paths = [p for bundle, tile in pairs for p in (entries_path(bundle), tile_path(tile))]
    contents = iter(fetch_many(paths))
    for bundle, tile in pairs:
        data = _served(entries_path(bundle), next(contents))
        tile_data = _served(tile_path(tile), next(contents))
        entries = walk.add_bundle(bundle, data, tile_data)
        last = bundle.index == len(pairs) - 1  # the right border of every proof lies in it
        if on_bundle(bundle.index * TILE_WIDTH, entries) or bundle.index in wanted or last:
            kept[tile] = tile_data
        if progress is not None:
            progress(len(entries))
    uppers = upper_tiles(size)
    for tile, fetched in zip(uppers, fetch_many([tile_path(t) for t in uppers]), strict=True):
        served = _served(tile_path(tile), fetched)
        walk.check_tile(tile, served)
        kept[tile] = served
    return WalkResult(walk.root(), kept)


def _served(path: str, data: bytes | None) -> bytes:
    if data is None:
        raise AuditFailure(RULE_MISSING, f"the log does not serve {path}, which the tree needs")
    return data


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
    verdict.root = _b64(checkpoint.root_hash)
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
                RULE_ROOT,
                f"the entries served hash to root {_b64(result.root)}, but the signed "
                f"checkpoint of size {checkpoint.size} says {verdict.root}",
            )
        verdict.consistency_proved = check_consistency(trusted, checkpoint, result.tiles)
        verdict.failures.extend(policy.finish())
    except AuditFailure as failure:
        verdict.failures.append(failure)
    return verdict, checkpoint


def _feed(policy: NonExposurePolicy) -> Callable[[int, list[bytes]], bool]:
    def on_bundle(first: int, entries: list[bytes]) -> bool:
        for offset, raw in enumerate(entries):
            policy.add(first + offset, raw)
        return False

    return on_bundle


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# --- case proofs ----------------------------------------------------------------------------


def case_entries(
    case_id: str,
) -> tuple[list[tuple[int, bytes]], Callable[[int, list[bytes]], bool]]:
    """A list that fills with (index, entry) of `case_id`'s entries, and the `on_bundle`
    callback for `walk_log` that fills it (keeping the level-0 tiles the proofs need)."""
    found: list[tuple[int, bytes]] = []
    needle = json.dumps(case_id).encode()

    def on_bundle(first: int, entries: list[bytes]) -> bool:
        hit = False
        for offset, raw in enumerate(entries):
            if needle in raw and _subject(raw) == case_id:
                found.append((first + offset, raw))
                hit = True
        return hit

    return found, on_bundle


def _subject(raw: bytes) -> object:
    try:
        entry = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return entry.get("subject") if isinstance(entry, dict) else None


def build_case_proof(
    case_id: str,
    note: str,
    checkpoint: Checkpoint,
    entries: Sequence[tuple[int, bytes]],
    tiles: Mapping[Tile, bytes],
) -> dict[str, Any]:
    """The self-contained proof file: the signed checkpoint, and each entry of the case with
    its RFC 9162 inclusion proof computed from `tiles` (which must hold every tile needed)."""
    size = checkpoint.size
    proved = []
    for index, raw in entries:
        proof = inclusion_proof(index, size, lambda nodes: hashes_from_tiles(nodes, tiles, size))
        proved.append({"index": index, "entry": raw.decode(), "proof": [_b64(h) for h in proof]})
    return {"format": PROOF_FORMAT, "case": case_id, "checkpoint": note, "entries": proved}


@dataclass(frozen=True)
class CaseProof:
    """A checked proof file: the case, the checkpoint, and the entries proven in it."""

    case: str
    checkpoint: Checkpoint
    entries: tuple[tuple[int, dict[str, Any]], ...]


def check_case_proof(document: Mapping[str, Any], log_key: Ed25519Verifier) -> CaseProof:
    """Verify a proof file offline: checkpoint signature, then every inclusion proof, and
    that every entry belongs to the case. Raises AuditFailure naming the first problem."""
    if document.get("format") != PROOF_FORMAT:
        raise AuditFailure(RULE_PROOF, f"not a {PROOF_FORMAT} file")
    case = document.get("case")
    note = document.get("checkpoint")
    items = document.get("entries")
    if not isinstance(case, str) or not isinstance(note, str) or not isinstance(items, list):
        raise AuditFailure(RULE_PROOF, "the proof file lacks its case, checkpoint or entries")
    checkpoint = open_log_checkpoint(note, log_key)
    checked = []
    for item in items:
        index, entry = _check_included(item, checkpoint)
        if entry.get("subject") != case:
            raise AuditFailure(RULE_PROOF, f"the entry is not about case {case}", index)
        checked.append((index, entry))
    return CaseProof(case, checkpoint, tuple(checked))


def _check_included(item: object, checkpoint: Checkpoint) -> tuple[int, dict[str, Any]]:
    """Verify one {index, entry, proof} item against the checkpoint; return it parsed."""
    if not isinstance(item, dict):
        raise AuditFailure(RULE_PROOF, "an entry of the proof file is not an object")
    index, entry, proof = item.get("index"), item.get("entry"), item.get("proof")
    if not isinstance(index, int) or not isinstance(entry, str) or not isinstance(proof, list):
        raise AuditFailure(RULE_PROOF, "an entry lacks its index, entry text or proof")
    try:
        hashes = [base64.b64decode(h, validate=True) for h in proof]
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("a proof hash is not 32 bytes")
        raw = entry.encode()
        verify_inclusion(index, checkpoint.size, leaf_hash(raw), hashes, checkpoint.root_hash)
        parsed = json.loads(raw)
    except (TlogError, ValueError, TypeError) as exc:
        raise AuditFailure(RULE_PROOF, f"inclusion proof refused: {exc}", index) from None
    if not isinstance(parsed, dict):
        raise AuditFailure(RULE_PROOF, "the entry is not a JSON object", index)
    return index, parsed
