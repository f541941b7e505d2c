"""The one logging policy: every line is built here, from values known to be safe.

Like GlobaLeaks' access-log formatter, the decision lives where the line is built, not at
each call site. Nothing from a request is ever written (no address, user agent, header, path
with ids, body, nor the text of an exception, which routinely echoes input). A line holds:

- the level, the logger name, the service;
- the message: for the engine clients' loggers (`ENGINE_CLIENT_LOGGERS`: aiokafka, pymongo,
  httpx) at INFO and above, and for uvicorn's own lifecycle lines (`UVICORN_LIFECYCLE`), the
  message with its arguments, because those are engine state (a node id, a topic, the
  broker's error) or the process id; for every other logger, the constant template only,
  its `%s` arguments dropped. DEBUG lines of engine clients keep their template only: they
  carry payloads (aiokafka's "Sending (key=%s value=%s)", pymongo's command documents);
- extra fields whose NAME is on `ALLOWED_FIELDS` and whose value is a number, a bool or a
  short token (the service's own typed fields: `extra={"case_id": ...}`);
- for an exception, its type and the file and line it was raised at, never its text.

Backstop: anything shaped like an IPv4 or IPv6 address is replaced by `[addr]` in every
message, and a field value holding one is withheld. Uvicorn's access log is switched off.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from typing import Any

ALLOWED_FIELDS = frozenset(
    {
        "service",
        "case_id",
        "event_id",
        "event_type",
        "topic",
        "partition",
        "offset",
        "group",
        "status",
        "route",
        "method",
        "count",
        "attempt",
        "index",
        "size",
        "key_id",
        "role",
        "duration_ms",
        "error_type",
        "engine",
        "port",
    }
)
# Loggers (and their children) of the clients that talk to our own engines: Kafka, MongoDB,
# and httpx, with which a service fetches Keycloak's keys (its URL and status are kept).
ENGINE_CLIENT_LOGGERS = ("aiokafka", "pymongo", "httpx")
# uvicorn.error also logs connections, with the client's address ("%sHTTP connection made"):
# only these lifecycle lines, whose arguments are the pid and the bind address, keep them.
UVICORN_LIFECYCLE = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "Uvicorn running on %s://[%s]:%d (Press CTRL+C to quit)",
        "Cancel %s running task(s), timeout graceful shutdown exceeded",
    }
)
MAX_MESSAGE_CHARS = 500
# A value must look like an identifier (ids, codes, route templates), never free text.
_TOKEN = re.compile(r"^[A-Za-z0-9_.:/{}\-]{0,80}$")
_IPV4 = r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"
_IPV6 = r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
_ADDRESS = re.compile(f"{_IPV4}|{_IPV6}")


def _scrub(text: str) -> str:
    return _ADDRESS.sub("[addr]", text)[:MAX_MESSAGE_CHARS]


def _safe(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str) and _TOKEN.match(value) and not _ADDRESS.search(value):
        return value
    return "[withheld]"


def _keeps_arguments(record: logging.LogRecord) -> bool:
    """Whether this record's arguments are engine state or lifecycle facts, never a request's."""
    if record.name == "uvicorn.error":
        return record.msg in UVICORN_LIFECYCLE
    engine_client = any(
        record.name == name or record.name.startswith(name + ".") for name in ENGINE_CLIENT_LOGGERS
    )
    return engine_client and record.levelno >= logging.INFO


def _message(record: logging.LogRecord) -> str:
    if not isinstance(record.msg, str):
        return "[withheld]"  # an object (an exception, pymongo's structured LogMessage)
    if _keeps_arguments(record):
        try:
            return _scrub(record.getMessage())
        except (TypeError, ValueError):  # arguments that do not fit the template
            pass
    return _scrub(record.msg)


class PolicyFormatter(logging.Formatter):
    """JSON lines: level, logger, service, message, allow-listed fields (see the module)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "msg": _message(record),
        }
        for name in ALLOWED_FIELDS:
            if name in record.__dict__:
                line[name] = _safe(record.__dict__[name])
        if record.exc_info and record.exc_info[0] is not None:
            line["error_type"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            if frames:
                last = frames[-1]
                line["where"] = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
        return json.dumps(line, separators=(",", ":"))


def configure_logging(service: str, level: int = logging.INFO) -> None:
    """Route every logger of this process through the policy formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PolicyFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", *ENGINE_CLIENT_LOGGERS):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # no access log, ever
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
