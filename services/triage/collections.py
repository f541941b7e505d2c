"""The collections triage owns, declared once: created at start-up, relayed by its relay.

The registry (factories, buyers, links, operator keys) is written by `shared/registry.py`
from triage's admin API, so it is triage's; intake and notify only read it.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from hotline.shared.disclosure import disclosures_collection
from hotline.shared.outbox import outbox_collection
from hotline.shared.registry import REGISTRY_VERSION
from hotline.shared.store import Collection, Collections

# The operator's queue keys of a case document (cases.py `queue_keys` writes them): field ->
# the filters it serves. Each is one string, `<filter values>:<due>:<case id>`, with a
# single-field index, because nx-27017 uses no compound index for a range, a sort and a limit
# (measured): a queue page is then one indexed range read of what it returns.
QUEUE_KEY_FILTERS: dict[str, tuple[str, ...]] = {
    "queue": (),
    "queue_status": ("status",),
    "queue_severity": ("severity",),
    "queue_factory": ("factory",),
    "queue_assignee": ("assignee",),
    "queue_status_severity": ("status", "severity"),
}
# The cases, `_id` = case id. Besides the queue keys, two single-field scheduler keys:
# `clock_next` (clocks.py: when the case's next running clock falls due) and
# `retention_next` (retention.py: when its next deletion falls due), each None when there
# is nothing to wait for, so each scheduler's round is one range read of what is due. Each
# key is its prefix and an ISO hour: a bound that starts like an ISO time matches nothing on
# nx-27017 (cases.py `key_prefix`).
CLOCK_KEY_PREFIX = "clock:"
RETENTION_KEY_PREFIX = "retention:"
TRIAGE_CASES = outbox_collection(
    "triage_cases",
    *(IndexModel([(field, ASCENDING)]) for field in QUEUE_KEY_FILTERS),
    IndexModel([("clock_next", ASCENDING)]),
    IndexModel([("retention_next", ASCENDING)]),
)
# The conversation of each case, one document per message (_id = its author's role and its
# message id, messages.py `stored_id`): the operator's messages (written with their events by
# the messages API) and every other author's (stored by the consumer of
# hotline.message.posted). `seq` orders a case's messages.
TRIAGE_MESSAGES = outbox_collection(
    "triage_messages", IndexModel([("case_id", ASCENDING), ("seq", ASCENDING)])
)
FACTORIES = outbox_collection("factories")
BUYERS = outbox_collection("buyers", IndexModel([("key_id", ASCENDING)], unique=True))
LINKS = outbox_collection(
    "links", IndexModel([("factory", ASCENDING)]), IndexModel([("buyer", ASCENDING)])
)
OPERATOR_KEYS = outbox_collection("operator_keys")
# How many registry writes there were (shared/registry.py `RegistryReader`): one document.
REGISTRY_WRITES = Collection(REGISTRY_VERSION)
# Reports of one category at one factory within one window (incidents.py), `_id` = the
# incident id; members are a map case id -> hour (never an array: DESIGN.md).
TRIAGE_INCIDENTS = outbox_collection("triage_incidents")
# The registry's retention policy per organisation (`_id` = org id, "default" for the
# platform's): days after closure until identity and content are deleted (retention.py).
RETENTION_POLICIES = outbox_collection("retention_policies")

COLLECTIONS = Collections(
    "triage",
    TRIAGE_CASES,
    TRIAGE_MESSAGES,
    disclosures_collection("triage"),
    FACTORIES,
    BUYERS,
    LINKS,
    OPERATOR_KEYS,
    REGISTRY_WRITES,
    TRIAGE_INCIDENTS,
    RETENTION_POLICIES,
)
