"""The one logging policy: every line is built here, from allow-listed fields only.

Like GlobaLeaks' access-log formatter, the decision lives where the line is built, not at
each call site. A record's interpolated message is never written (its arguments may carry
an address, a header or a report's words): only the constant message template, the logger
name, the level, and extra fields whose NAME is on the allow-list and whose value is a
number, a bool or a short token. Exceptions are written as their type and location only,
because exception messages routinely echo input. Uvicorn's access log is switched off.
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
# A value must look like an identifier (ids, codes, route templates), never free text.
_TOKEN = re.compile(r"^[A-Za-z0-9_.:/{}\-]{0,80}$")
_IPV4 = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b")


def _safe(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str) and _TOKEN.match(value) and not _IPV4.search(value):
        return value
    return "[withheld]"


class PolicyFormatter(logging.Formatter):
    """JSON lines with allow-listed fields only."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            # The template only: "%s"-style arguments are dropped, never interpolated.
            "msg": _safe(record.msg) if isinstance(record.msg, str) else "[withheld]",
        }
        if isinstance(record.msg, str) and not _TOKEN.match(record.msg):
            line["msg"] = _template_words(record.msg)
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


def _template_words(template: str) -> str:
    """A message template with placeholders kept and anything address-like removed."""
    return _IPV4.sub("[addr]", template)[:200]


def configure_logging(service: str, level: int = logging.INFO) -> None:
    """Route every logger of this process through the policy formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PolicyFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "pymongo"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # no access log, ever
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
