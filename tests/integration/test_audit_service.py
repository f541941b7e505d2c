"""The audit-log service: checkpoints, tiles, sequencing, start-up check, cosignatures.

Against the session's running system (its audit log consumes every topic), and against
separate audit-log processes (`python -m hotline.audit_log --no-consume`) over databases of
their own, seeded through the real Sequencer, so tampering never disturbs other tests.
The helpers (events, `LogInstance`) are in tests/support/audit.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from hotline.audit_log.sequencer import Sequencer
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.events import EventType
from hotline.shared.store import Databases, Store
from hotline.shared.tlog.checkpoint import open_checkpoint
from hotline.shared.tlog.compact import CompactRange, NodeID, root_from_leaf_hashes
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.note import (
    Cosigner,
    Ed25519Verifier,
    NoteSignature,
    format_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
)
from hotline.shared.tlog.tiles import (
    decode_bundle,
    entries_path,
    new_bundles,
    new_tiles,
    tile_data,
    tile_path,
)
from tests.support.audit import (
    LogInstance,
    Org,
    World,
    probe,
    publish_events,
    report,
    sequence_into,
    served_size,
    status,
    system_entries,
)
from tests.support.cli import hotline
from tests.support.waiting import wait_for

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="session")
def mongo(mongo_engine: Any, test_settings: Settings) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(test_settings.mongo_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def seeded(mongo_engine: Any, test_settings: Settings) -> Iterator[LogInstance]:
    """A log of 600 entries (two full bundles and a partial one), served by its own process."""
    instance = LogInstance(test_settings, "audit_service_seeded")
    instance.sequence(World().log(199))
    instance.start()
    try:
        instance.wait_for_size(600)
        yield instance
    finally:
        instance.stop()


# --- the session's system ------------------------------------------------------------------


def test_checkpoint_is_signed_by_the_key_at_vkey(system: Any) -> None:
    url = system.settings.audit_url
    publish_events(system.settings, [probe(f"probe-{uuid.uuid4()}")])
    vkey = httpx.get(f"{url}/vkey", verify=tls())
    assert vkey.status_code == 200 and vkey.headers["content-type"].startswith("text/plain")
    verifier = parse_verifier_key(vkey.text.strip())
    assert isinstance(verifier, Ed25519Verifier)
    wait_for(lambda: served_size(url) > 0, timeout=60, what="a non-empty checkpoint")
    response = httpx.get(f"{url}/checkpoint", verify=tls())
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=2"
    assert "set-cookie" not in response.headers
    checkpoint, note = open_checkpoint(response.text, verifier.name, [verifier])
    assert checkpoint.origin == system.settings.audit_origin
    assert note.signatures[0].key_id == verifier.key_id


def test_tiles_agree_with_the_tree_recomputed_from_the_entries(seeded: LogInstance) -> None:
    """Recomputed independently of the service and of the auditor module: RFC 9162 root
    from the bundles' entries, every tile from the stored nodes of a compact range."""
    note = seeded.wait_for_size(600)
    checkpoint, _ = open_checkpoint(note, seeded.origin, [seeded.signer.verifier()])
    entries: list[bytes] = []
    for bundle in new_bundles(0, checkpoint.size):
        entries += decode_bundle(get(seeded, entries_path(bundle)), bundle.width)
    leaves = [leaf_hash(entry) for entry in entries]
    assert root_from_leaf_hashes(leaves) == checkpoint.root_hash
    nodes: dict[NodeID, bytes] = {}
    CompactRange().extend(leaves, nodes.__setitem__)
    tiles = new_tiles(0, checkpoint.size)
    assert {(t.level, t.width) for t in tiles} == {(0, 256), (0, 88), (1, 2)}
    for tile in tiles:
        assert get(seeded, tile_path(tile)) == tile_data(tile, lambda ns: [nodes[n] for n in ns])
    assert json.loads(entries[0])["type"] == EventType.KEY_REGISTERED
    assert b"ciphertext" not in b"".join(entries)


def get(instance: LogInstance, path: str) -> bytes:
    response = httpx.get(f"{instance.url}/{path}", verify=tls())
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.content


def test_tiles_are_served_as_c2sp_says(seeded: LogInstance) -> None:
    for path in (
        "tile/0/000",
        "tile/0/001",
        "tile/entries/000",
        "tile/0/002.p/88",
        "tile/entries/002.p/88",
        "tile/1/000.p/2",
    ):
        response = httpx.get(f"{seeded.url}/{path}", verify=tls())
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["cache-control"] == IMMUTABLE
        assert "set-cookie" not in response.headers
    assert len(get(seeded, "tile/0/000")) == 256 * 32
    beyond = (
        "tile/0/002",
        "tile/0/003",
        "tile/entries/002",
        "tile/1/000",
        "tile/0/002.p/89",
        "tile/2/000.p/1",
    )
    malformed = ("tile/0/2", "tile/00/000", "tile/0/000.p/256", "tile/0/000.p/0", "tile/x/000")
    for path in beyond + malformed:
        assert httpx.get(f"{seeded.url}/{path}", verify=tls()).status_code == 404, path


def test_a_redelivered_event_is_appended_once(system: Any) -> None:
    case = f"redelivery-{uuid.uuid4()}"
    event, marker = probe(case), probe(case)
    # Same type and subject: one partition, so the marker is sequenced after both copies.
    publish_events(system.settings, [event, event, marker])
    wait_for(
        lambda: any(
            e["entry"]["event_id"] == marker.id for e in system_entries(system.settings, case)
        ),
        timeout=60,
        what="the marker event in the audit log",
    )
    ids = [e["entry"]["event_id"] for e in system_entries(system.settings, case)]
    assert ids == [event.id, marker.id]


def test_a_report_waits_for_the_registration_of_its_identity_keys(system: Any) -> None:
    """Kafka orders no two topics: a report that arrives before its operator key's
    registration is held back until the registration is in the log, never sequenced first."""
    operator, case = Org("hotline-operator", "operator"), f"order-{uuid.uuid4()}"
    early = report(case, "F-ORDER", [operator], [operator])
    publish_events(system.settings, [early])
    marker = probe(f"marker-{uuid.uuid4()}")  # published after the report, on another topic
    publish_events(system.settings, [marker])
    wait_for(lambda: system_entries(system.settings, marker.subject), timeout=60, what="marker")
    assert reports(system, case) == [], "held back: its key is not in the log"

    registration = operator.registered()
    publish_events(system.settings, [registration])
    [sequenced] = wait_for(lambda: reports(system, case), timeout=60, what="the report")
    [key] = system_entries(system.settings, registration.subject)
    assert sequenced["entry"]["event_id"] == early.id
    assert key["index"] < sequenced["index"], "the key is registered earlier in the log"


def reports(system: Any, case: str) -> list[dict[str, Any]]:
    """The case's report.submitted entries (triage's own events for it may come first)."""
    entries = system_entries(system.settings, case)
    return [e for e in entries if e["entry"]["type"] == EventType.REPORT_SUBMITTED]


def test_the_sequencer_is_idempotent_and_contiguous(
    mongo: MongoClient[dict[str, Any]], test_settings: Settings
) -> None:
    settings = test_settings.model_copy(update={"mongo_db": "audit_sequencer"})
    first = [status(f"c{n}", "open") for n in range(5)]
    assert asyncio.run(sequence_into(settings, first)) == [0, 1, 2, 3, 4]
    again = [first[1], status("c5", "open"), first[1], first[4], status("c6", "open")]
    assert asyncio.run(sequence_into(settings, again)) == [1, 5, 1, 4, 6]

    async def one_by_one() -> list[int]:
        store = Store(settings)
        try:
            sequencer = Sequencer(store)
            return [await sequencer.sequence(first[2]), await sequencer.sequence(status("c7", "x"))]
        finally:
            await store.close()

    assert asyncio.run(one_by_one()) == [2, 7]
    stored = sorted(
        doc["_id"] for doc in Databases(mongo, "audit_sequencer").audit_entries.find({})
    )
    assert stored == list(range(8))


def test_checkpoints_follow_new_entries_and_are_all_kept(
    mongo: MongoClient[dict[str, Any]], test_settings: Settings
) -> None:
    instance = LogInstance(test_settings, "audit_service_growing").start()
    try:
        world = World()
        instance.wait_for_size(0)
        instance.sequence(world.prologue())
        instance.wait_for_size(3)
        instance.sequence(world.case("case-a"))
        note = instance.wait_for_size(6)
        open_checkpoint(note, instance.origin, [instance.signer.verifier()])
        kept = {doc["size"]: doc["note"] for doc in instance.db(mongo).audit_checkpoints.find({})}
        assert set(kept) == {0, 3, 6}
        for size, text in kept.items():
            checkpoint, _ = open_checkpoint(text, instance.origin, [instance.signer.verifier()])
            assert checkpoint.size == size
        # The partial tiles of every published size stay served (C2SP tlog-tiles).
        assert len(get(instance, "tile/0/000.p/3")) == 3 * 32
        assert len(get(instance, "tile/0/000.p/6")) == 6 * 32
    finally:
        instance.stop()


def test_start_up_refuses_a_rewritten_store(
    seeded: LogInstance, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Stop the seeded log, rewrite its store in two ways; each time it refuses to start
    and says what differs; restored, it starts again."""
    db = seeded.db(mongo)
    seeded.stop()
    try:
        original = db.audit_entries.find_one({"_id": 7})
        db.audit_entries.update_one({"_id": 7}, {"$set": {"entry": original["entry"] + " "}})
        assert_refuses(seeded, "differs from its last checkpoint (size 600): sequenced entry 7")
        db.audit_entries.replace_one({"_id": 7}, original)

        path = "tile/0/001"
        tile = db.audit_tiles.find_one({"_id": path})
        data = bytearray(base64.b64decode(tile["data"]))
        data[32 * 9] ^= 1
        db.audit_tiles.update_one(
            {"_id": path}, {"$set": {"data": base64.b64encode(data).decode()}}
        )
        assert_refuses(seeded, "entry 265: the entry served hashes to")
        db.audit_tiles.replace_one({"_id": path}, tile)

        other_key = LogInstance(seeded.base, seeded.database)  # same log, another signing key
        assert_refuses(other_key, "does not verify with this log's key")
    finally:
        seeded.start()
    seeded.wait_for_size(600)


def assert_refuses(instance: LogInstance, detail: str) -> None:
    process = instance.launch()
    wait_for(lambda: not process.running(), timeout=60, what="the audit log to refuse to start")
    assert process.popen is not None and process.popen.returncode != 0
    log = instance.process.log_tail(60) if instance.process else ""
    assert "audit-log refuses to start: " in log
    assert detail in log, log


# --- witnesses --------------------------------------------------------------------------------


def test_cosignature_round_trip_and_unknown_witnesses_refused(
    mongo_engine: Any, test_settings: Settings, tmp_path: Path
) -> None:
    witness_file, stranger_file = tmp_path / "witness.key", tmp_path / "stranger.key"
    witness_vkey = hotline(
        "audit", "witness-key", "generate", "--out", str(witness_file), "--name", "auditor.test"
    ).stdout.strip()
    stranger_vkey = hotline(
        "audit", "witness-key", "generate", "--out", str(stranger_file), "--name", "stranger.test"
    ).stdout.strip()
    assert (tmp_path / "witness.key.pub").read_text().strip() == witness_vkey
    assert witness_file.stat().st_mode & 0o077 == 0
    instance = LogInstance(test_settings, "audit_witnessed", witnesses=witness_vkey)
    instance.sequence(World().log(3))
    instance.start()
    try:
        note = instance.wait_for_size(12)
        log = ("--log", instance.url, "--vkey", instance.vkey)
        cosigned = hotline("audit", "verify", *log, "--cosign", str(witness_file))
        assert "cosigned checkpoint of size 12 as auditor.test" in cosigned.stderr
        served = httpx.get(f"{instance.url}/checkpoint", verify=tls()).text
        assert served.startswith(note) and "\u2014 auditor.test " in served
        quorum = hotline("audit", "verify", *log, "--witness", witness_vkey, "--quorum", "1")
        assert "witnesses: 1 cosignature(s), quorum 1" in quorum.stdout

        refused = hotline("audit", "verify", *log, "--cosign", str(stranger_file), check=False)
        assert refused.returncode != 0
        assert "refused the cosignature (403)" in refused.stderr
        assert (
            "stranger.test+" in refused.stderr and "is not a witness of this log" in refused.stderr
        )
        not_cosigned = hotline("audit", "verify", *log, "--witness", stranger_vkey, check=False)
        assert not_cosigned.returncode == 1 and "witness-quorum" in not_cosigned.stdout

        text = parse_note(note)[0]
        witness = Cosigner.generate("auditor.test")  # same name, other key: unknown
        forged = format_note(text, [witness.cosign(text, 1_700_000_000)])
        assert post_cosignature(instance, forged).status_code == 403
        known = parse_signer(witness_file)
        good = known.cosign(text, 1_700_000_000)
        flipped = good.signature[:-1] + bytes([good.signature[-1] ^ 1])
        bad = NoteSignature(good.name, good.key_id, flipped)
        assert post_cosignature(instance, format_note(text, [bad])).status_code == 422
        smaller = text.replace("\n12\n", "\n11\n")
        assert post_cosignature(instance, format_note(smaller, [good])).status_code == 404
        origin, size, _root = text.splitlines()
        forked = f"{origin}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n"
        response = post_cosignature(instance, format_note(forked, [known.cosign(forked, 1)]))
        assert response.status_code == 409, response.text
        assert post_cosignature(instance, "not a note").status_code == 400
    finally:
        instance.stop()


def post_cosignature(instance: LogInstance, body: str) -> httpx.Response:
    return httpx.post(
        f"{instance.url}/cosignature",
        content=body.encode(),
        headers={"content-type": "text/plain"},
        verify=tls(),
    )


def parse_signer(path: Path) -> Cosigner:
    signer = parse_signer_key(path.read_text().strip())
    assert isinstance(signer, Cosigner)
    return signer
