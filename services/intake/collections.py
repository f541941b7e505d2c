"""The collections intake owns, declared once: created at start-up, relayed by its relay.

Intake also reads the registry (factories, buyers, links, operator keys), which triage owns.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from hotline.shared.outbox import outbox_collection
from hotline.shared.store import Collections

INTAKE_CASES = outbox_collection(
    "intake_cases", IndexModel([("receipt_lookup", ASCENDING)], unique=True)
)

COLLECTIONS = Collections("intake", INTAKE_CASES)
