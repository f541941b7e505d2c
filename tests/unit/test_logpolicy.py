"""The logging policy: only allow-listed fields reach a log line, whatever a caller passes."""

from __future__ import annotations

import json
import logging

from hotline.shared.logpolicy import PolicyFormatter


def line(message: str, *args: object, exc: bool = False, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError("the worker wrote: my boss hits me")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(PolicyFormatter("intake").format(record))
    return parsed


def test_arguments_are_never_interpolated() -> None:
    out = line("request from %s said %s", "203.0.113.7", "my boss hits me")
    text = json.dumps(out)
    assert "203.0.113.7" not in text and "boss" not in text
    assert out["msg"] == "request from %s said %s"


def test_only_allow_listed_fields_with_token_values() -> None:
    out = line(
        "event", case_id="c-1", client_addr="203.0.113.7", body="my boss", status="free text here"
    )
    assert out["case_id"] == "c-1"
    assert "client_addr" not in out and "body" not in out
    assert out["status"] == "[withheld]", "a value that is not a token is withheld"


def test_addresses_are_withheld_even_in_allowed_fields_and_templates() -> None:
    out = line("connected to 10.1.2.3", route="10.1.2.3")
    assert "10.1.2.3" not in json.dumps(out)


def test_exceptions_give_type_and_place_never_their_message() -> None:
    out = line("failed", exc=True)
    assert out["error_type"] == "ValueError"
    assert "boss" not in json.dumps(out) and str(out["where"]).startswith("test_logpolicy.py:")
