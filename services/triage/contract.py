"""The case API's plain constants (issue 17's contract): a case's statuses, the state machine
between them and the queue's page sizes. Shared by the service and the `hotline` command, and
importing nothing, so the command knows them without loading the service's web framework."""

from __future__ import annotations

from typing import Literal

# Every status a case can have (issue 17 contract, section 2), in workflow order.
Status = Literal["received", "acknowledged", "investigating", "remediation", "resolved", "closed"]
STATUSES: tuple[Status, ...] = (
    "received",
    "acknowledged",
    "investigating",
    "remediation",
    "resolved",
    "closed",
)
INITIAL_STATUS = "received"
# The state machine (status -> statuses it may become): forward one step at a time to
# resolved, or closed (with a reason) from any open status; resolved and closed are final.
OPEN_STATUSES = ("received", "acknowledged", "investigating", "remediation")
FINAL_STATUSES = ("resolved", "closed")
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"acknowledged", "closed"}),
    "acknowledged": frozenset({"investigating", "closed"}),
    "investigating": frozenset({"remediation", "closed"}),
    "remediation": frozenset({"resolved", "closed"}),
    "resolved": frozenset(),
    "closed": frozenset(),
}

# A page of the queue: cases when the caller does not say, and the most it may ask for.
DEFAULT_PAGE = 50
MAX_PAGE = 200
