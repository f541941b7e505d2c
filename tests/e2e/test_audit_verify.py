"""The auditor's tools, used as a compliance officer would: `hotline audit verify`, `prove`,
`check-proof`, against the session's log and against logs whose store is rewritten.

Every way of rewriting history the issue lists (change, remove, reorder or insert an
entry, a tile that disagrees with the entries, two checkpoints of one size) and every
non-exposure rule must make `verify` fail with a message saying what is wrong.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from hotline.audit_log.integrator import integrate
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.events import EventType
from hotline.shared.store import Databases
from hotline.shared.tlog.checkpoint import Checkpoint, sign_checkpoint
from hotline.shared.tlog.tiles import EntryBundle, decode_bundle, encode_bundle, entries_path
from tests.support.audit import (
    LogInstance,
    Org,
    World,
    checkpoint_note,
    disclosed,
    probe,
    publish_events,
    report,
    served_size,
    system_entries,
)
from tests.support.cli import hotline, hotline_json
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

Mongo = MongoClient[dict[str, Any]]

# --- the session's log, with a real report ---------------------------------------------------


@dataclass
class Submitted:
    case_id: str
    vkey: str


@pytest.fixture(scope="module")
def submitted(system: Any, tmp_path_factory: pytest.TempPathFactory) -> Submitted:
    """A factory, an operator key, a report with identity, and the operator reading it."""
    settings = system.settings
    admin = password_token(settings, "admin", "admin")
    operator = password_token(settings, "operator", "operator")
    key = tmp_path_factory.mktemp("audit-keys") / "operator.key"
    hotline("keys", "generate", "--out", str(key))
    factory = f"F-AUD-{uuid.uuid4().hex[:6].upper()}"
    hotline(
        "admin", "factory", "add", factory, "--name", "Audit Toys", "--country", "VN", token=admin
    )
    hotline("admin", "operator-key", "add", "--public-key-file", f"{key}.pub", token=admin)
    case_id = hotline_json(
        "submit",
        "--factory",
        factory,
        "--category",
        "safety",
        "--text",
        "blocked exit",
        "--identity",
        "a worker's name",
    )["case_id"]

    def read() -> bool:
        shown = hotline("cases", "show", case_id, "--key", str(key), token=operator, check=False)
        return shown.returncode == 0

    wait_for(read, timeout=60, what="the case at triage")

    def logged() -> bool:
        entries = [e["entry"] for e in system_entries(settings, case_id)]
        disclosures = [e for e in entries if e["type"] == EventType.ENVELOPE_DISCLOSED]
        return any(e["class"] == "identity" for e in disclosures)

    wait_for(logged, timeout=60, what="the identity disclosure in the audit log")
    vkey = httpx.get(f"{settings.audit_url}/vkey", verify=tls()).text.strip()
    return Submitted(case_id, vkey)


def test_verify_the_session_log_then_again_from_the_state(
    submitted: Submitted, system: Any, tmp_path: Path
) -> None:
    url = system.settings.audit_url
    size = wait_for(
        lambda: entries_in_checkpoint(url, submitted.case_id),
        timeout=60,
        what="the case in a checkpoint",
    )
    state = tmp_path / "state.json"
    verdict = hotline("audit", "verify", "--vkey", submitted.vkey, "--state", str(state))
    assert "VERDICT: OK" in verdict.stdout, verdict.stdout
    assert "first verification" in verdict.stdout
    first = json.loads(state.read_text())
    assert first["origin"] == system.settings.audit_origin

    publish_events(system.settings, [probe(f"after-{uuid.uuid4()}")])
    wait_for(lambda: served_size(url) > size, timeout=60, what="a bigger checkpoint")
    again = hotline_json("audit", "verify", "--vkey", submitted.vkey, "--state", str(state))
    assert again["ok"] and again["consistency_proved"] and again["trusted_size"] >= size
    assert again["policy"]["identity_envelopes"] >= 1
    assert again["policy"]["identity_disclosures"] >= 1
    assert again["policy"]["operator_keys"] >= 1 and again["policy"]["factories"] >= 1
    assert again["tiles"] >= again["bundles"] >= 1


def entries_in_checkpoint(url: str, case_id: str) -> int | None:
    """The checkpoint size once it covers every entry of the case logged so far."""
    last = max(
        e["index"]
        for e in httpx.get(f"{url}/api/entries", params={"case": case_id}, verify=tls()).json()
    )
    size = served_size(url)
    return size if size > last else None


def test_prove_and_check_a_case_offline(submitted: Submitted, system: Any, tmp_path: Path) -> None:
    proof = tmp_path / "case.proof"
    made = hotline("audit", "prove", "--case", submitted.case_id, "--out", str(proof))
    assert f"of case {submitted.case_id} proven" in made.stdout
    document = json.loads(proof.read_text())
    logged = {e["index"] for e in system_entries(system.settings, submitted.case_id)}
    assert {e["index"] for e in document["entries"]} <= logged
    assert {json.loads(e["entry"])["type"] for e in document["entries"]} >= {
        EventType.REPORT_SUBMITTED,
        EventType.ENVELOPE_DISCLOSED,
    }
    checked = hotline("audit", "check-proof", str(proof), "--vkey", submitted.vkey)
    assert checked.stdout.startswith(f"PROOF OK: {len(document['entries'])} entries of case")

    forged = dict(document)
    entry = json.loads(document["entries"][0]["entry"])
    entry["factory"] = "F-OTHER"
    forged["entries"] = [{**document["entries"][0], "entry": json.dumps(entry)}]
    proof.write_text(json.dumps(forged))
    refused = hotline("audit", "check-proof", str(proof), "--vkey", submitted.vkey, check=False)
    assert refused.returncode == 1 and "inclusion proof refused" in refused.stdout
    other_log = LogInstance(system.settings, "unused").vkey
    wrong_key = hotline("audit", "check-proof", str(proof), "--vkey", other_log, check=False)
    assert wrong_key.returncode == 1 and "checkpoint refused" in wrong_key.stdout


# --- rewriting history -----------------------------------------------------------------------

SIZE = 600  # bundles 0 and 1 full, bundle 2 holds 88 entries; tile/1/000.p/2


@pytest.fixture(scope="module")
def history(test_settings: Settings, mongo_engine: Any) -> Iterator[LogInstance]:
    """A log of 600 entries that integrates once, at start, so tampering stays put."""
    instance = LogInstance(test_settings, "audit_verify_history", interval=3600)
    instance.sequence(World().log(199))
    instance.start()
    try:
        instance.wait_for_size(SIZE)
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def mongo(test_settings: Settings, mongo_engine: Any) -> Iterator[Mongo]:
    client: Mongo = MongoClient(test_settings.mongo_url)
    try:
        yield client
    finally:
        client.close()


class Tamper:
    """Rewrites a log's published store directly in MongoDB; `restore` undoes everything."""

    def __init__(self, instance: LogInstance, client: Mongo) -> None:
        self.instance = instance
        self.db = Databases(client, instance.database)
        self.saved = {
            name: list(self.db[name].find({})) for name in ("audit_tiles", "audit_checkpoints")
        }

    def restore(self) -> None:
        for name, docs in self.saved.items():
            self.db[name].delete_many({})
            self.db[name].insert_many(docs)

    def entries(self) -> list[bytes]:
        docs = sorted(self.db.audit_entries.find({}), key=lambda doc: doc["_id"])
        return [doc["entry"].encode() for doc in docs]

    def edit_bundle(self, index: int, change: Callable[[list[bytes]], list[bytes]]) -> None:
        bundle = EntryBundle(index, min(SIZE - 256 * index, 256))
        self._edit(
            entries_path(bundle),
            lambda data: encode_bundle(change(decode_bundle(data, bundle.width))),
        )

    def flip(self, path: str, position: int) -> None:
        def flipped(data: bytes) -> bytes:
            return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]

        self._edit(path, flipped)

    def _edit(self, path: str, change: Callable[[bytes], bytes]) -> None:
        doc = self.db.audit_tiles.find_one({"_id": path})
        assert doc is not None, path
        data = change(base64.b64decode(doc["data"]))
        self.db.audit_tiles.update_one(
            {"_id": path}, {"$set": {"data": base64.b64encode(data).decode()}}
        )

    def republish(self, entries: list[bytes]) -> None:
        """Rewrite history consistently, as someone holding the log's key could: every tile
        and bundle recomputed from `entries`, and a newly signed checkpoint as the latest."""
        built = integrate(0, {}, entries)
        for path, data in built.resources.items():
            doc = {"_id": path, "data": base64.b64encode(data).decode()}
            self.db.audit_tiles.replace_one({"_id": path}, doc, upsert=True)
        note = sign_checkpoint(
            Checkpoint(self.instance.origin, built.size, built.root), [self.instance.signer]
        )
        self.db.audit_checkpoints.delete_many({})
        self.db.audit_checkpoints.insert_one({"_id": built.size, "size": built.size, "note": note})


def changed(entry: bytes) -> bytes:
    edited = entry.replace(b'"subject":"', b'"subject":"x', 1)
    assert edited != entry, "the entry to change has a subject"
    return edited


def swap(entries: list[bytes], i: int, j: int) -> list[bytes]:
    entries = list(entries)
    entries[i], entries[j] = entries[j], entries[i]
    return entries


# (name, how the store is rewritten, what the verdict must say)
REWRITES: list[tuple[str, Callable[[Tamper], None], list[str]]] = [
    (
        "an entry changed",
        lambda t: t.edit_bundle(0, lambda es: [*es[:6], changed(es[6]), *es[7:]]),
        ["entry 6: the entry served hashes to", "tile/0/000", "tile-matches-entries"],
    ),
    (
        "an entry removed",
        lambda t: t.edit_bundle(1, lambda es: es[:44] + es[45:]),
        ["entry 256: tile/entries/001: entry bundle holds 255 entries, want 256"],
    ),
    (
        "two entries reordered",
        lambda t: t.edit_bundle(0, lambda es: swap(es, 10, 11)),
        ["entry 10: the entry served hashes to", "tile-matches-entries"],
    ),
    (
        "an entry inserted",
        lambda t: t.edit_bundle(2, lambda es: es[:3] + [changed(es[3])] + es[3:]),
        ["tile/entries/002.p/88: entry bundle holds 89 entries, want 88", "bundle-well-formed"],
    ),
    (
        "a level-0 tile that disagrees with the entries",
        lambda t: t.flip("tile/0/001", 32 * 7),
        ["entry 263: the entry served hashes to", "but tile/0/001 holds"],
    ),
    (
        "a level-1 tile that disagrees with the entries",
        lambda t: t.flip("tile/1/000.p/2", 32 + 3),
        ["tile/1/000.p/2 holds", "for the subtree of entries 256..511"],
    ),
    (
        "two checkpoints of the same size (a fork)",
        lambda t: t.republish(swap(t.entries(), 10, 11)),
        ["FORK: two different checkpoints of size 600", "no-fork"],
    ),
    (
        "a forked history extended by one entry",
        lambda t: t.republish([*swap(t.entries(), 10, 11), t.entries()[0] + b" "]),
        ["FORK: the tree of size 601 is not an extension of the checkpoint of size 600"],
    ),
    (
        "a rolled-back log",
        lambda t: t.republish(t.entries()[:599]),
        ["the log shows size 599, smaller than the size 600 you trusted", "no-rollback"],
    ),
]


@pytest.fixture(scope="module")
def trusted_state(history: LogInstance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The auditor's state after verifying the untouched log."""
    state = tmp_path_factory.mktemp("auditor") / "state.json"
    hotline("audit", "verify", "--log", history.url, "--vkey", history.vkey, "--state", str(state))
    return state


@pytest.mark.parametrize("name,rewrite,says", REWRITES, ids=[r[0] for r in REWRITES])
def test_rewritten_history_fails_verification(
    history: LogInstance,
    mongo: Mongo,
    trusted_state: Path,
    tmp_path: Path,
    name: str,
    rewrite: Callable[[Tamper], None],
    says: list[str],
) -> None:
    state = tmp_path / "state.json"
    state.write_text(trusted_state.read_text())
    tamper = Tamper(history, mongo)
    rewrite(tamper)
    try:
        result = hotline(
            "audit",
            "verify",
            "--log",
            history.url,
            "--vkey",
            history.vkey,
            "--state",
            str(state),
            check=False,
        )
    finally:
        tamper.restore()
    assert result.returncode == 1, f"{name}: {result.stdout}"
    assert "VERDICT: FAILED" in result.stdout
    for text in says:
        assert text in result.stdout, f"{name}: {text!r} not in\n{result.stdout}"
    assert state.read_text() == trusted_state.read_text(), "a failed run must keep the state"
    intact = hotline(
        "audit", "verify", "--log", history.url, "--vkey", history.vkey, "--state", str(state)
    )
    assert "VERDICT: OK" in intact.stdout


def test_a_checkpoint_signed_by_another_key_is_refused(history: LogInstance) -> None:
    other = LogInstance(history.base, history.database).vkey  # same origin, another key
    result = hotline("audit", "verify", "--log", history.url, "--vkey", other, check=False)
    assert result.returncode == 1 and "checkpoint-signature" in result.stdout


# --- the non-exposure policy ---------------------------------------------------------------


def violations() -> list[tuple[str, Callable[[World], list[Any]], int, list[str]]]:
    """(name, the log's events after a good prologue and case, failing entry, messages)."""
    manager = "factory-manager"

    def sealed_to_buyer(w: World) -> list[Any]:
        return [report("case-x", w.factory, [w.operator, w.buyer], [w.operator, w.buyer])]

    def disclosed_to_manager(w: World) -> list[Any]:
        return [disclosed("case-0000", manager, w.factory, "identity", [w.operator])]

    def disclosed_to_factory_org(w: World) -> list[Any]:
        return [disclosed("case-0000", "triage-analyst", w.factory, "identity", [w.operator])]

    def sealed_to_factory_key(w: World) -> list[Any]:
        factory_key = Org(w.factory, "factory")
        return [factory_key.registered(), report("case-x", w.factory, [w.operator], [factory_key])]

    def operator_registered_late(w: World) -> list[Any]:
        late = Org("hotline-operator", "operator")
        return [report("case-x", w.factory, [w.operator], [late]), late.registered()]

    rule1 = "identity-sealed-to-operator-keys-registered-earlier"
    rule2 = "no-identity-disclosure-to-factory"
    return [
        (
            "identity sealed to a buyer key",
            sealed_to_buyer,
            6,
            [rule1, "registered for buyer-t at entry 2"],
        ),
        (
            "identity disclosed to a factory manager",
            disclosed_to_manager,
            6,
            [rule2, "role factory-manager", "identity disclosed to org F-T01, a factory"],
        ),
        (
            "identity disclosed to a factory's org",
            disclosed_to_factory_org,
            6,
            [rule2, "a factory (added at entry 1)"],
        ),
        (
            "identity sealed to a factory's key",
            sealed_to_factory_key,
            7,
            [
                "no-factory-key-receives-identity",
                "a key registered for a factory at entry 6",
                rule1,
            ],
        ),
        (
            "identity sealed to an operator key registered later",
            operator_registered_late,
            6,
            [rule1, "never registered so far"],
        ),
    ]


@pytest.mark.parametrize("name,events,index,says", violations(), ids=[v[0] for v in violations()])
def test_the_policy_catches_identity_exposure(
    test_settings: Settings,
    mongo_engine: Any,
    name: str,
    events: Callable[[World], list[Any]],
    index: int,
    says: list[str],
) -> None:
    world = World()
    log = world.log(1) + events(world)
    # A database name is at most 63 bytes, the audit log's own `<name>_audit` included.
    unique = re.sub(r"\W+", "_", name)[:24] + "_" + uuid.uuid4().hex[:8]
    instance = LogInstance(test_settings, f"audit_policy_{unique}")
    instance.sequence(log)
    instance.start()
    try:
        instance.wait_for_size(len(log))
        result = hotline(
            "audit", "verify", "--log", instance.url, "--vkey", instance.vkey, check=False
        )
        as_json = hotline(
            "audit", "verify", "--log", instance.url, "--vkey", instance.vkey, "--json", check=False
        )
    finally:
        instance.stop()
    assert result.returncode == 1 and "VERDICT: FAILED" in result.stdout, result.stdout
    assert f"entry {index}: " in result.stdout
    for text in says:
        assert text in result.stdout, f"{name}: {text!r} not in\n{result.stdout}"
    verdict = json.loads(as_json.stdout)
    assert not verdict["ok"] and index in {f["index"] for f in verdict["failures"]}


def test_an_unreachable_log_is_an_error_not_a_verdict(history: LogInstance) -> None:
    result = hotline(
        "audit", "verify", "--log", "http://127.0.0.1:9", "--vkey", history.vkey, check=False
    )
    assert result.returncode == 1 and "cannot reach the log" in result.stderr
    assert checkpoint_note("http://127.0.0.1:9") is None
