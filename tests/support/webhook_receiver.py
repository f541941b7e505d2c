"""A buyer's webhook receiver for the tests: a real HTTPS server on 127.0.0.1 whose certificate
the test session makes (with `cryptography`), issued by the session's own CA, which the
session's notify trusts through HOTLINE_WEBHOOK_CA_FILE (tests/conftest.py sets it, and a
short back-off schedule, before any service starts).

The receiver is the one `hotline bench alerts` delivers to (hotline.cli.bench.alerts), so the
bench and the tests see deliveries the same way: each request's signature verified with
standardwebhooks' `Webhook.verify`, each message kept once by `webhook-id`; requests, repeats,
refusals and failed signatures counted. The session's CA lives where the bench looks for its
own (`<data>/webhook-ca`), so the bench measures the test session's system as it is.
"""

from __future__ import annotations

from pathlib import Path

from hotline.cli.bench.alerts import CA_FOLDER, Endpoint, LocalCA, Received, WebhookReceiver

__all__ = [
    "WEBHOOK_SCHEDULE",
    "Endpoint",
    "LocalCA",
    "Received",
    "WebhookReceiver",
    "session_ca",
]

# Six tries at most 0.25, 0.5, 1, 2 and 2 s apart (full jitter below each): a delivery is
# dead within 6 s, and an outage of a second or two is ridden out.
WEBHOOK_SCHEDULE = {
    "HOTLINE_WEBHOOK_ATTEMPTS": "6",
    "HOTLINE_WEBHOOK_BACKOFF_BASE": "0.25",
    "HOTLINE_WEBHOOK_BACKOFF_MAX": "2",
}


def session_ca(data: Path) -> LocalCA:
    """The test session's CA, in its data directory (made on first use)."""
    return LocalCA.load_or_create(data / CA_FOLDER)
