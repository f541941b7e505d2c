"""RFC 8785 canonical JSON, fast for the documents the services hash and bind most.

`canonical_json(value)` is `rfc8785.dumps(value)`, byte for byte and error for error. The
`rfc8785` library is pure Python and was a seventh of sealing a report (two envelopes' AEAD
associated data; `hotline bench seal`). For a document of exactly dicts, lists, strings,
booleans, None and integers within +-(2**53 - 1), whose strings (keys included) are all
ASCII, the standard library's C encoder with sorted keys and no spaces writes the same
bytes, at a third of the cost: RFC 8785 then escapes what JSON must (the quote, the backslash
and U+0000 to U+001F, short forms first, else lowercase \\u00xx) and sorts keys by UTF-16
code units, which for ASCII is the order of `sorted`. Anything else (a float, a tuple, a
non-ASCII or non-str key, a big integer) goes to `rfc8785`, which defines it.
tests/unit/test_canonical.py checks the equality on generated documents.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_SAFE_INTEGER = 2**53 - 1
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical JSON (UTF-8) of `value`; raises what `rfc8785.dumps` raises."""
    if _plain(value):
        text = _ENCODE(value)
        if text.isascii():
            return text.encode("ascii")
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """Whether `value` holds only the types the fast path writes as RFC 8785 does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INTEGER <= value <= _SAFE_INTEGER)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False
