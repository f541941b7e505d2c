"""The collections notify owns, declared once: created at start-up, relayed by its relay.

Notify also reads the registry (buyers and links), which triage owns.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from hotline.shared.disclosure import disclosures_collection
from hotline.shared.outbox import outbox_collection
from hotline.shared.store import Collections

NOTIFY_ITEMS = outbox_collection(
    "notify_items", IndexModel([("buyer", ASCENDING), ("case_id", ASCENDING)])
)

COLLECTIONS = Collections("notify", NOTIFY_ITEMS, disclosures_collection("notify"))
