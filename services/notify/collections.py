"""The collections notify owns, declared once: created at start-up, relayed by its relay.

Notify also reads the registry (buyers, links, operator keys), which triage owns.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from hotline.shared.disclosure import disclosures_collection
from hotline.shared.outbox import outbox_collection
from hotline.shared.store import Collections

NOTIFY_ITEMS = outbox_collection(
    "notify_items", IndexModel([("buyer", ASCENDING), ("case_id", ASCENDING)])
)
# A buyer's questions (_id = message id), each written with its `message.posted` event. The
# question itself (its envelope) travels in the event only: triage keeps the conversation.
NOTIFY_QUESTIONS = outbox_collection("notify_questions", IndexModel([("case_id", ASCENDING)]))

COLLECTIONS = Collections(
    "notify", NOTIFY_ITEMS, NOTIFY_QUESTIONS, disclosures_collection("notify")
)
