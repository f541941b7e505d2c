"""The logging policy: engine clients' values are kept, nothing from a request ever is."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError

from hotline.shared.logpolicy import PolicyFormatter, configure_logging

WORKER_WORDS = "the worker wrote: my boss hits me"


def line(
    message: object,
    *args: object,
    logger: str = "hotline.intake",
    level: int = logging.WARNING,
    exc: bool = False,
    **extra: object,
) -> dict[str, object]:
    record = logging.LogRecord(logger, level, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError(WORKER_WORDS)
        except ValueError:
            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(PolicyFormatter("intake").format(record))
    return parsed


def test_an_engine_client_line_keeps_its_value() -> None:
    error = KafkaConnectionError("Connection at node 1 closed")
    out = line(
        "Group Coordinator Request failed: %s",
        error,
        logger="aiokafka.consumer.group_coordinator",
    )
    assert out["msg"] == "Group Coordinator Request failed: " + str(error)
    assert "node 1 closed" in str(out["msg"])
    pymongo = line("Server %s:%d unreachable (%s)", "mongo", 27017, "timeout", logger="pymongo")
    assert pymongo["msg"] == "Server mongo:27017 unreachable (timeout)"
    keys = line(
        'HTTP Request: %s %s "%s %d %s"',
        "GET",
        "http://keycloak:8080/realms/hotline/protocol/openid-connect/certs",
        "HTTP/1.1",
        503,
        "Service Unavailable",
        logger="httpx",
        level=logging.INFO,
    )
    assert "/certs" in str(keys["msg"]) and "503 Service Unavailable" in str(keys["msg"])


def test_an_engine_client_line_loses_addresses_but_keeps_the_rest() -> None:
    out = line(
        "Unable connect to node with id %s: %s",
        1,
        "Connect call failed ('203.0.113.7', 9092) and [2001:db8::7]:9092 and ::1",
        logger="aiokafka",
    )
    text = str(out["msg"])
    assert "203.0.113.7" not in text and "2001:db8" not in text and "::1" not in text
    assert text.startswith("Unable connect to node with id 1: Connect call failed")
    assert "9092" in text


def test_engine_client_debug_lines_keep_no_payload() -> None:
    out = line(
        "Sending (key=%s value=%s) to %s",
        b"case-1",
        WORKER_WORDS.encode(),
        "hotline.report.submitted-0",
        logger="aiokafka.producer.producer",
        level=logging.DEBUG,
    )
    assert out["msg"] == "Sending (key=%s value=%s) to %s"


def test_a_line_carrying_a_client_address_keeps_none_of_it() -> None:
    connection = line(
        "%sHTTP connection made", "203.0.113.7:53211 - ", logger="uvicorn.error", level=5
    )
    assert "203.0.113.7" not in json.dumps(connection)
    assert connection["msg"] == "%sHTTP connection made"
    websocket = line(
        '%s - "WebSocket %s" [accepted]',
        ("203.0.113.7", 53211),
        "/api/cases/c-1?receipt=1234",
        logger="uvicorn.error",
        level=logging.INFO,
    )
    assert "203.0.113.7" not in json.dumps(websocket) and "receipt" not in json.dumps(websocket)


def test_uvicorn_lifecycle_lines_keep_their_values_but_not_the_address() -> None:
    started = line("Started server process [%d]", 4242, logger="uvicorn.error")
    assert started["msg"] == "Started server process [4242]"
    running = line(
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "http",
        "127.0.0.1",
        8000,
        logger="uvicorn.error",
    )
    assert running["msg"] == "Uvicorn running on http://[addr]:8000 (Press CTRL+C to quit)"


def test_our_own_lines_drop_arguments_and_keep_typed_fields() -> None:
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
    out = line("connected to 10.1.2.3", route="10.1.2.3", group="fe80::1:2")
    assert "10.1.2.3" not in json.dumps(out) and "fe80" not in json.dumps(out)


def test_non_text_messages_are_withheld() -> None:
    assert line(OSError(WORKER_WORDS), logger="uvicorn.error")["msg"] == "[withheld]"


def test_exception_text_from_a_request_handler_is_never_written() -> None:
    out = line("Exception in ASGI application\n", logger="uvicorn.error", exc=True)
    assert out["error_type"] == "ValueError"
    assert "boss" not in json.dumps(out) and str(out["where"]).startswith("test_logpolicy.py:")
    from_engine_client = line("Unexpected error in %s", "fetcher", logger="aiokafka", exc=True)
    assert "boss" not in json.dumps(from_engine_client)
    assert from_engine_client["msg"] == "Unexpected error in fetcher"


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """configure_logging as a service runs it, its stream kept; logging is restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "pymongo")
    loggers = {name: logging.getLogger(name) for name in names}
    states = {n: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for n, lg in loggers.items()}
    configure_logging("intake")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved
        for name, lg in loggers.items():
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = states[name]


def test_the_access_log_is_never_written(service_log: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "203.0.113.7:53211", "POST", "/api/reports", "1.1", 202
    )
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    [written] = service_log.getvalue().splitlines()  # the access line was not written at all
    assert json.loads(written)["msg"] == "Started server process [4242]"
