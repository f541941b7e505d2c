"""The collections notify owns, declared once: created at start-up, relayed by its relay.

Notify also reads the registry (buyers, links, operator keys, schedules), which triage owns.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from hotline.shared.disclosure import disclosures_collection
from hotline.shared.outbox import outbox_collection
from hotline.shared.store import Collection, Collections

# What each buyer is to be told, one record per fact, numbered per buyer (`n` = 1, 2, 3...,
# unique, no gap; issuance.py says how): a case's report ("new", `_id` = `<buyer>:<case>`,
# with the content envelope) or a change of the case ("changed", `<buyer>:<case>:<event>`).
# `slot` = `<buyer>:<n, 12 digits>` is the unique key of the number. It is one string, not a
# compound (buyer, n) index, because nx-27017 serves ranges and sorts from a single-field
# index only (measured: a compound index is scanned past): the buyer's records after n, and
# its highest n, are then reads of what they return.
NOTIFY_ITEMS = Collection(
    "notify_items",
    (IndexModel([("slot", ASCENDING)], unique=True), IndexModel([("case_id", ASCENDING)])),
)
# The state of each case as triage announces it (severity, due, status, escalated), `_id` =
# case id: what a digest says of a case when it is issued, and what makes it urgent.
NOTIFY_CASES = Collection("notify_cases")
# Per buyer (`_id`): the last digest's seq and hash, the last record it covered (`upto`),
# the schedule boundary last handled, guarded by `version`.
NOTIFY_BUYER_STATE = Collection("notify_buyer_state")
# The signed digests (`_id` = `<buyer>:<seq>`), each written with its `digest.issued` event;
# `slot` = `<buyer>:<seq, 12 digits>` (unique) orders a buyer's digests for pulls by cursor.
NOTIFY_DIGESTS = outbox_collection("notify_digests", IndexModel([("slot", ASCENDING)], unique=True))
# A buyer's messages, each written with its `message.posted` event: questions (_id = message
# id; the envelope travels in the event only: triage keeps the conversation) and "noted"
# acknowledgements (_id = `noted:<buyer>:<case>`, one per buyer and case).
NOTIFY_QUESTIONS = outbox_collection("notify_questions", IndexModel([("case_id", ASCENDING)]))
# Buyers' webhook endpoints (`_id` = endpoint id), each with its signing secret.
NOTIFY_WEBHOOKS = Collection("notify_webhooks", (IndexModel([("buyer", ASCENDING)]),))
# What is sent to a buyer's endpoints, once per buyer and message (`_id` =
# `<buyer>:<message id>`): the payload, and whether its envelopes' hand-out is logged.
NOTIFY_WEBHOOK_MESSAGES = Collection("notify_webhook_messages")
# One per (endpoint, message), `_id` = `<endpoint>:<message id>`: status, attempts, and
# while pending the time of the next attempt (what the deliverer looks for). An endpoint's
# deliveries of one status are found by `endpoint_status` = `<endpoint>:<status>`: nx-27017
# uses no compound index, and its count_documents reads every document (measured).
NOTIFY_DELIVERIES = Collection(
    "notify_deliveries",
    (
        IndexModel([("next_attempt", ASCENDING)]),
        IndexModel([("endpoint", ASCENDING)]),
        IndexModel([("endpoint_status", ASCENDING)]),
    ),
)

COLLECTIONS = Collections(
    "notify",
    NOTIFY_ITEMS,
    NOTIFY_CASES,
    NOTIFY_BUYER_STATE,
    NOTIFY_DIGESTS,
    NOTIFY_QUESTIONS,
    disclosures_collection("notify"),
    NOTIFY_WEBHOOKS,
    NOTIFY_WEBHOOK_MESSAGES,
    NOTIFY_DELIVERIES,
)
