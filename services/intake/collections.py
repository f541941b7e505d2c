"""The collections intake owns, declared once: created at start-up, relayed by its relay.

Intake also reads the registry (factories, buyers, links, operator keys), which triage owns.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from hotline.shared.disclosure import disclosures_collection
from hotline.shared.outbox import outbox_collection
from hotline.shared.store import Collection, Collections

# The cases. `challenge` is the nonce of the proof of work that paid for the report
# (submission.py): unique, so the case's insert spends it; sparse, as the no-JS form's
# reports pay none.
INTAKE_CASES = outbox_collection(
    "intake_cases",
    IndexModel([("receipt_lookup", ASCENDING)], unique=True),
    IndexModel([("challenge", ASCENDING)], unique=True, sparse=True),
)
# One document per attachment envelope (_id = its envelope hash), apart from the case:
# attachments are megabytes, and never travel in Kafka. A worker's answer's attachments
# carry its `message_id`; a report's have none.
INTAKE_ATTACHMENTS = Collection("intake_attachments", (IndexModel([("case_id", ASCENDING)]),))
# The case's conversation as the status page shows it, one document per message
# (_id = message id): the worker's answers (written here, with their event in the outbox;
# metadata only once published) and what the operators sent the worker (from the topic,
# with the envelope sealed to the worker's reply key).
INTAKE_MESSAGES = outbox_collection("intake_messages", IndexModel([("case_id", ASCENDING)]))
# The proof-of-work challenges lookups and answers spent (_id = nonce), dropped when they
# expire; a report's is spent in its case (`challenge`).
SPENT_CHALLENGES = Collection(
    "intake_spent_challenges", (IndexModel([("expires", ASCENDING)], expireAfterSeconds=0),)
)

COLLECTIONS = Collections(
    "intake",
    INTAKE_CASES,
    INTAKE_ATTACHMENTS,
    INTAKE_MESSAGES,
    SPENT_CHALLENGES,
    disclosures_collection("intake"),
)
