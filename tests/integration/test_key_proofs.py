"""`GET /api/key-proofs` of the audit log, over real HTTP: each key's `key.registered`
entry with its RFC 9162 inclusion proof in the latest checkpoint's tree, checked here the
way the worker's page checks it (the log's vkey, the note, the proof, the entry's fields).

Against a separate audit-log process over a database of its own (tests/support/audit.py's
`LogInstance`) that integrates once, at start: a key registered after that is sequenced but
not covered by a checkpoint. And against the session's system: a key registered over Kafka
gets its proof once a checkpoint covers it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from hotline.audit_log.key_proofs import registration_filter
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.events import KeyRevoked, new_event
from hotline.shared.keys import b64encode, key_id
from hotline.shared.tlog.checkpoint import Checkpoint, open_checkpoint
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.note import Ed25519Verifier, parse_verifier_key
from hotline.shared.tlog.verify import verify_inclusion
from tests.support.audit import LogInstance, Org, World, publish_events
from tests.support.waiting import wait_for

WORLD = World()
MIDDLE = Org("buyer-m", "buyer")  # registered in the second bundle, then revoked
LATE = Org("buyer-late", "buyer")  # sequenced after the only integration pass
UNKNOWN = key_id(bytes([7]) * 32)
SIZE = 3 + 3 * 100 + 2 + 3 * 99  # prologue, 100 cases, MIDDLE's two entries, 99 cases


@pytest.fixture(scope="module")
def log(mongo_engine: Any, test_settings: Settings) -> Iterator[LogInstance]:
    instance = LogInstance(test_settings, "audit_key_proofs", interval=3600)
    cases = [WORLD.case(f"case-{n:04d}") for n in range(199)]
    revoked = new_event(
        MIDDLE.key_id, KeyRevoked(key_id=MIDDLE.key_id, org=MIDDLE.org, org_kind=MIDDLE.kind)
    )
    instance.sequence(
        WORLD.prologue()
        + [event for case in cases[:100] for event in case]
        + [MIDDLE.registered(), revoked]
        + [event for case in cases[100:] for event in case]
    )
    instance.start()
    try:
        instance.wait_for_size(SIZE)
        instance.sequence([LATE.registered()])
        yield instance
    finally:
        instance.stop()


def key_proofs(url: str, keys: list[str]) -> httpx.Response:
    return httpx.get(f"{url}/api/key-proofs", params={"key": keys}, verify=tls())


def log_key(url: str) -> Ed25519Verifier:
    verifier = parse_verifier_key(httpx.get(f"{url}/vkey", verify=tls()).text.strip())
    assert isinstance(verifier, Ed25519Verifier)
    return verifier


def check_proofs(body: dict[str, Any], vkey: Ed25519Verifier, orgs: list[Org]) -> Checkpoint:
    """What the page checks (contract section 6): the checkpoint is signed by the log's key,
    and each org's key has a proof whose leaf registers exactly that public key and whose
    inclusion proof reproduces the checkpoint's root."""
    checkpoint, _ = open_checkpoint(body["checkpoint"], vkey.name, [vkey])
    assert body["size"] == checkpoint.size
    for org in orgs:
        proof = body["proofs"][org.key_id]
        leaf = base64.b64decode(proof["entry"], validate=True)
        entry = json.loads(leaf)
        assert entry["type"] == "key.registered" and entry["key_id"] == org.key_id
        assert entry["public_key"] == b64encode(org.public) and entry["org"] == org.org
        hashes = [base64.b64decode(h, validate=True) for h in proof["inclusion"]]
        verify_inclusion(
            proof["index"], checkpoint.size, leaf_hash(leaf), hashes, checkpoint.root_hash
        )
    return checkpoint


def test_registered_keys_are_proven_in_the_latest_checkpoint(log: LogInstance) -> None:
    keys = [WORLD.operator.key_id, WORLD.buyer.key_id, MIDDLE.key_id, LATE.key_id, UNKNOWN]
    response = key_proofs(log.url, keys)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=2"
    assert "set-cookie" not in response.headers
    body = response.json()
    assert body["checkpoint"] == httpx.get(f"{log.url}/checkpoint", verify=tls()).text
    checkpoint = check_proofs(body, log_key(log.url), [WORLD.operator, WORLD.buyer, MIDDLE])
    assert checkpoint.size == SIZE
    assert set(body["proofs"]) == {WORLD.operator.key_id, WORLD.buyer.key_id, MIDDLE.key_id}
    indices = {kid: proof["index"] for kid, proof in body["proofs"].items()}
    # MIDDLE's registration (in the second tile), not the revocation that followed it.
    assert indices == {WORLD.operator.key_id: 0, WORLD.buyer.key_id: 2, MIDDLE.key_id: 303}


def test_malformed_requests_are_refused_without_echoing_them(log: LogInstance) -> None:
    good = WORLD.operator.key_id
    for keys in (
        [],
        ["<b>x25519:nonsense</b>"],
        [good, good.upper()],
        [good, "x25519:" + "ab" * 33],
        [f"x25519:{n:064x}" for n in range(65)],
    ):
        response = key_proofs(log.url, keys)
        assert response.status_code == 422, (keys, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "nonsense" not in detail and "abab" not in detail
    repeated = key_proofs(log.url, [good] * 3)
    assert repeated.status_code == 200 and list(repeated.json()["proofs"]) == [good]


def test_the_registration_lookup_uses_the_subject_index(
    log: LogInstance, test_settings: Settings
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(test_settings.mongo_url)
    try:
        query = registration_filter(WORLD.operator.key_id, SIZE)
        plan = str(log.db(client).audit_entries.find(query).explain())
    finally:
        client.close()
    # nx-27017 (SQLite) names its indexes idx_<collection>_<fields>; MongoDB's plan says IXSCAN.
    on_subject = "USING INDEX idx_audit_entries_subject" in plan or (
        "IXSCAN" in plan and "subject_1" in plan
    )
    assert on_subject, f"the lookup uses the subject index, not a scan: {plan}"


# --- the session's system ------------------------------------------------------------------


def test_a_key_registered_over_kafka_is_proven_once_a_checkpoint_covers_it(system: Any) -> None:
    url = system.settings.audit_url
    operator = Org("hotline-operator", "operator")
    publish_events(system.settings, [operator.registered()])

    def proven() -> dict[str, Any] | None:
        response = key_proofs(url, [operator.key_id])
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return body if operator.key_id in body.get("proofs", {}) else None

    body = wait_for(proven, timeout=60, what="a checkpoint covering the new key")
    check_proofs(body, log_key(url), [operator])
