"""transparency-dev/merkle's proof probes (tests/vectors/merkle, see its README) against
hotline.shared.tlog.verify: one test per kind, one case per file, each mutation mapped to the
typed error it must raise."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hotline.shared.tlog.errors import (
    HashSizeError,
    OutOfRangeError,
    ProofSizeError,
    RootMismatchError,
    TlogError,
)
from hotline.shared.tlog.verify import verify_consistency, verify_inclusion

VECTORS = Path(__file__).parents[1] / "vectors" / "merkle"

# What each mutation must raise. A mutation of an index or a size breaks the precondition
# in some cases (leafIdx + 1 leaves a one-leaf tree) and not in others, where the proof
# then has the wrong length or leads to another root: all of those are listed, and
# `_precondition_broken` pins OutOfRangeError exactly where the precondition is broken.
EXPECTED: dict[str, tuple[type[TlogError], ...]] = {
    "happy-path": (),
    "matching-root-and-leaf": (),
    "wrong-leaf": (HashSizeError,),
    "empty-leaf": (HashSizeError,),
    "random-leaf": (HashSizeError,),
    "empty-root-and-leaf": (HashSizeError,),
    "empty-root": (HashSizeError, OutOfRangeError, RootMismatchError),
    "empty-root-and-random-leaf": (OutOfRangeError, RootMismatchError),
    "random-root": (RootMismatchError,),
    "modified-proof-bit": (RootMismatchError,),
    "swapped-roots": (RootMismatchError,),
    "preceding-garbage": (HashSizeError,),
    "trailing-garbage": (HashSizeError,),
    "wrong-root1": (HashSizeError,),
    "wrong-root2": (HashSizeError,),
    "inserted-component": (ProofSizeError,),
    "removed-component": (ProofSizeError,),
    "truncated-proof": (ProofSizeError,),
    "empty-proof": (ProofSizeError,),
    "preceding-root": (ProofSizeError,),
    "trailing-root": (ProofSizeError,),
    "preceding-root1": (ProofSizeError,),
    "preceding-root2": (ProofSizeError,),
    "trailing-root1": (ProofSizeError,),
    "trailing-root2": (ProofSizeError,),
    "preceding-proof": (ProofSizeError,),
    "leafIdx-XOR": (OutOfRangeError, ProofSizeError, RootMismatchError),
    "leafIdx-plus": (OutOfRangeError, RootMismatchError),
    "leafIdx-sub": (OutOfRangeError, ProofSizeError, RootMismatchError),
    "treeSize-div": (OutOfRangeError, ProofSizeError),
    "treeSize-mul": (ProofSizeError,),
    "size1-XOR": (OutOfRangeError, ProofSizeError),
    "size1-plus": (ProofSizeError,),
    "size1-sub": (OutOfRangeError, ProofSizeError),
    "size2-div": (OutOfRangeError, ProofSizeError),
    "size2-mul": (ProofSizeError,),
    # consistency/additional: described by the file name.
    "consistency-check-on-empty-tree-size1-is-zero-is-useless": (OutOfRangeError,),
    "sizes-match-but-proof-is-not-empty-and-sizes-are-zero": (OutOfRangeError,),
    "sizes-match-but-proof-is-not-empty-and-sizes-are-one": (ProofSizeError,),
    # Their roots are 12-byte placeholders ("don't care 1"), refused before anything else.
    "roots-do-not-match-and-sizes-are-zero": (HashSizeError,),
    "roots-do-not-not-match-and-sizes-are-one": (HashSizeError,),
    "size1-is-greater-than-size2": (HashSizeError,),
    "size1-is-greater-than-size2-again": (HashSizeError,),
    "size1-is-zero-and-does-not-equal-size2": (HashSizeError,),
    "size1-is-zero-and-size2-is-not-zero": (HashSizeError,),
    "sizes-are-equal-one-but-roots-are-not": (HashSizeError,),
    "sizes-are-equal-zero-and-proof-is-empty": (HashSizeError,),
    "sizes-are-equal-zero-but-roots-are-not": (HashSizeError,),
    "sizes-do-not-watch-and-proof-is-empty": (HashSizeError,),
    # Upstream accepts equal 12-byte "roots" (wantErr false); Hotline requires 32-byte
    # roots (see tests/vectors/README.md).
    "sizes-are-equal-one-and-proof-is-empty": (HashSizeError,),
}
STRICTER_THAN_UPSTREAM = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def _probes(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _mutation(path: Path) -> str:
    """`modified-proof[1]-bit-@3` -> `modified-proof-bit`, `size1-plus-@1` -> `size1-plus`."""
    return re.sub(r"-?(\[\d+\]|@\d+)", "", path.stem)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _precondition_broken(probe: dict[str, Any]) -> bool:
    if "leafIdx" in probe:
        return not 0 <= probe["leafIdx"] < probe["treeSize"]
    return not 0 < probe["size1"] <= probe["size2"]


def _check(path: Path, probe: dict[str, Any], error: TlogError | None) -> None:
    expected = EXPECTED[_mutation(path)]
    name = path.relative_to(VECTORS).as_posix()
    assert probe["wantErr"] == bool(expected) or name in STRICTER_THAN_UPSTREAM, name
    if not expected:
        assert error is None, f"{name}: {error!r}"
        return
    assert isinstance(error, expected), f"{name}: {error!r}, want one of {expected}"
    if _precondition_broken(probe) and not isinstance(error, HashSizeError):
        assert isinstance(error, OutOfRangeError), name


def test_every_probe_has_an_expectation() -> None:
    paths = _probes("inclusion") + _probes("consistency")
    assert len(paths) == 196
    assert {_mutation(p) for p in paths} == set(EXPECTED)


@pytest.mark.parametrize("path", _probes("inclusion"), ids=lambda p: p.stem)
def test_inclusion_probe(path: Path) -> None:
    probe = json.loads(path.read_text())
    error: TlogError | None = None
    try:
        verify_inclusion(
            probe["leafIdx"],
            probe["treeSize"],
            _b64(probe["leafHash"]),
            [_b64(x) for x in probe["proof"] or []],
            _b64(probe["root"]),
        )
    except TlogError as caught:
        error = caught
    _check(path, probe, error)


@pytest.mark.parametrize("path", _probes("consistency"), ids=lambda p: p.stem)
def test_consistency_probe(path: Path) -> None:
    probe = json.loads(path.read_text())
    error: TlogError | None = None
    try:
        verify_consistency(
            probe["size1"],
            probe["size2"],
            [_b64(x) for x in probe["proof"] or []],
            _b64(probe["root1"]),
            _b64(probe["root2"]),
        )
    except TlogError as caught:
        error = caught
    _check(path, probe, error)
