"""What the audit log records of each event: hashes and metadata, never ciphertext or content.

Pure: `audit_entry(event)` is a dict, `entry_bytes` its RFC 8785 canonical form, which is
the leaf anyone can re-hash (RFC 9162 leaf hash) to recompute the tree.
"""

from __future__ import annotations

from typing import Any

import rfc8785

from hotline.shared.envelope import envelope_hash, envelope_recipients
from hotline.shared.events import Event, EventType


def _envelope_summary(envelope: dict[str, Any], envelope_class: str) -> dict[str, Any]:
    return {
        "class": envelope_class,
        "hash": envelope_hash(envelope),
        "recipients": sorted(envelope_recipients(envelope)),
    }


def audit_entry(event: Event) -> dict[str, Any]:
    """The leaf recorded for `event`: common fields plus the facts its type needs."""
    data = event.data
    entry: dict[str, Any] = {
        "event_id": event.id,
        "type": event.type,
        "time": event.time,
        "subject": event.subject,
        "schema": event.schema_version,
    }
    if event.type == EventType.REPORT_SUBMITTED:
        envelopes = [_envelope_summary(data["content"], "content")]
        if data.get("identity") is not None:
            envelopes.append(_envelope_summary(data["identity"], "identity"))
        entry |= {
            "factory": data["factory"],
            "categories": data["categories"],
            "urgent": data["urgent"],
            "channel": data["channel"],
            "server_encrypted": data["server_encrypted"],
            "envelopes": envelopes,
        }
    elif event.type == EventType.ENVELOPE_DISCLOSED:
        entry |= {
            "principal": {"role": data["principal"]["role"], "org": data["principal"]["org"]},
            "class": data["envelope_class"],
            "envelope_hash": data["envelope_hash"],
            "recipients": data["recipient_key_ids"],
        }
    elif event.type == EventType.DIGEST_ISSUED:
        entry |= {
            "buyer": data["buyer"],
            "factory": data["factory"],
            "envelope_hash": data["envelope_hash"],
            "recipients": data["recipient_key_ids"],
        }
    elif event.type == EventType.MESSAGE_POSTED:
        entry |= {
            "author_role": data["author_role"],
            "envelopes": [_envelope_summary(data["envelope"], "message")],
        }
    elif event.type in (EventType.KEY_REGISTERED, EventType.KEY_REVOKED):
        entry |= {k: data[k] for k in ("key_id", "org", "org_kind")}
        if "public_key" in data:
            entry["public_key"] = data["public_key"]
    elif event.type in (EventType.CASE_TRIAGED, EventType.CASE_ESCALATED):
        entry |= {k: data[k] for k in ("severity", "due") if k in data}
        if "reason" in data:
            entry["reason"] = data["reason"]
    elif event.type == EventType.CASE_STATUS_CHANGED:
        entry["status"] = data["status"]
    elif event.type == EventType.REGISTRY_CHANGED:
        entry |= {k: data.get(k) for k in ("change", "factory", "buyer")}
    return entry


def entry_bytes(entry: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of an entry: the exact bytes that are hashed as a leaf."""
    return rfc8785.dumps(entry)
