"""`shared/canonical.py` writes what rfc8785 writes, and raises what it raises, for any
JSON-like value: ASCII or not, floats, tuples, big integers, non-str keys, lone surrogates."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.shared.canonical import canonical_json

# Text the fast path takes (ASCII, control characters included) and text it hands on
# (any code point, lone surrogates included).
ascii_text = st.text(st.characters(max_codepoint=127), max_size=12)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
texts = st.one_of(ascii_text, ascii_text, any_text)
integers = st.one_of(
    st.integers(-(2**53 - 1), 2**53 - 1), st.integers(), st.sampled_from([2**53 - 1, 2**53])
)
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(), texts)
keys = st.one_of(texts, texts, texts, st.integers(0, 9))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)


def outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(value)
    except Exception as exc:  # noqa: BLE001 - the kind of refusal is what is compared
        return "raised", type(exc)


@settings(max_examples=1500, deadline=None)
@given(values)
def test_the_same_bytes_or_the_same_refusal_as_rfc8785(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(rfc8785.dumps, value)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, 'x\n\t\u0001\u001f"\\'], "A": {"": -(2**53 - 1)}},
        {"routing": {"factory": "F-001", "categories": ["safety"], "urgent": True}},
        {"é": "ü", "z": "\u2028"},
        {"\U0001f600": 1, "\ufb01": 2},  # UTF-16 order differs from code point order here
        {"n": 2**53},
        {"f": 1.0, "g": -0.0, "h": 1e21},
        {1: "int key"},
        ("a", "tuple"),
        "lone \ud800 surrogate",
    ],
)
def test_the_cases_where_the_two_paths_could_differ(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(rfc8785.dumps, value)
