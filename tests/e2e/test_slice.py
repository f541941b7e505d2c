"""The foundation slice end to end: CLI -> intake -> Kafka -> triage, notify, audit log,
with real Keycloak tokens, and the security properties that must hold on the way."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from hotline.cli.engines.local import LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.store import Databases
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

Mongo = MongoClient[dict[str, Any]]


class Tokens:
    """Access tokens by user, fetched again before they expire: the module outlasts the
    realm's 5-minute tokens on a loaded machine."""

    MAX_AGE = 120.0  # seconds; well inside the realm's access token lifespan

    def __init__(self, settings: Settings, users: dict[str, str]) -> None:
        self._settings = settings
        self._users = users
        self._fetched: dict[str, tuple[str, float]] = {}

    def __getitem__(self, name: str) -> str:
        cached = self._fetched.get(name)
        if cached is None or time.monotonic() - cached[1] > self.MAX_AGE:
            cached = (token(self._settings, self._users[name]), time.monotonic())
            self._fetched[name] = cached
        return cached[0]


@dataclass
class World:
    tokens: Tokens
    keys: dict[str, Path]
    orgs: dict[str, str]
    folders: Path  # where the buyers' `digests pull` keep their digest files
    factory: str
    other_factory: str
    case_id: str
    receipt: str
    secret_text: str
    secret_identity: str


def token(settings: Settings, user: str) -> str:
    return password_token(settings, user, user)


@pytest.fixture(scope="module")
def world(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Two factories, each with a buyer of its own, and one report at the first.

    The factories and buyers are this module's own (the README walkthrough registers the demo
    ones, F-001 and buyer-1, in the same session), so the buyers are users made for it."""
    settings = system.settings
    suffix = uuid.uuid4().hex[:6]
    factory, other_factory = f"F-SA{suffix.upper()}", f"F-SB{suffix.upper()}"
    buyer_orgs = {"buyer_a": f"slice-a-{suffix}", "buyer_b": f"slice-b-{suffix}"}
    users = {"admin": "admin", "operator": "operator", "auditor": "auditor"}
    users |= {name: add_user(settings, "buyer", org) for name, org in buyer_orgs.items()}
    tokens = Tokens(settings, users)
    keydir = tmp_path_factory.mktemp("keys")
    keys = {}
    for name in ("operator", "buyer_a", "buyer_b"):
        keys[name] = keydir / f"{name}.key"
        kid = hotline("keys", "generate", "--out", str(keys[name])).stdout.strip()
        assert kid.startswith("x25519:")
    admin = tokens["admin"]
    hotline(
        "admin", "factory", "add", factory, "--name", "Sunrise Toys", "--country", "CN", token=admin
    )
    hotline(
        "admin",
        "factory",
        "add",
        other_factory,
        "--name",
        "Delta Garments",
        "--country",
        "BD",
        token=admin,
    )
    hotline(
        "admin", "operator-key", "add", "--public-key-file", f"{keys['operator']}.pub", token=admin
    )
    for buyer, at in (("buyer_a", factory), ("buyer_b", other_factory)):
        org = buyer_orgs[buyer]
        hotline(
            "admin",
            "buyer",
            "add",
            org,
            "--name",
            org.title(),
            "--public-key-file",
            f"{keys[buyer]}.pub",
            token=admin,
        )
        hotline("admin", "link", org, at, token=admin)

    secret_text = f"fire exit blocked by pallets zq{uuid.uuid4().hex[:10]}"
    secret_identity = f"Li Wei phone 138{uuid.uuid4().int % 10**8:08d} xk{uuid.uuid4().hex[:10]}"
    submitted = hotline_json(
        "submit",
        "--factory",
        factory,
        "--category",
        "safety",
        "--urgent",
        "--text",
        secret_text,
        "--identity",
        secret_identity,
    )
    return World(
        tokens,
        keys,
        buyer_orgs,
        tmp_path_factory.mktemp("digests"),
        factory,
        other_factory,
        submitted["case_id"],
        submitted["receipt"],
        secret_text,
        secret_identity,
    )


def pull_all(world: World, buyer: str) -> list[dict[str, Any]]:
    """Every case of the buyer's digests, pulled from the first one into a folder of its own."""
    folder = world.folders / f"{buyer}-{uuid.uuid4().hex[:8]}"
    cases: list[dict[str, Any]] = hotline_json(
        "digests", "pull", "--since", "0", "--key", str(world.keys[buyer]), "--out", str(folder),
        token=world.tokens[buyer],
    )  # fmt: skip
    return cases


def test_buyer_reads_the_case_decrypted_without_identity(world: World) -> None:
    def pulled() -> list[dict[str, object]]:
        return [c for c in pull_all(world, "buyer_a") if c["case_id"] == world.case_id]

    [case] = wait_for(pulled, timeout=60, what="the case in buyer A's digest")
    assert case["factory"] == world.factory
    assert case["categories"] == ["safety"]
    assert case["content"] == world.secret_text
    assert "identity" not in case
    assert world.secret_identity not in str(case)


def test_other_buyer_never_sees_the_case(world: World, system: LocalSystem) -> None:
    test_buyer_reads_the_case_decrypted_without_identity(world)  # it has been routed by now
    cases = pull_all(world, "buyer_b")
    assert world.case_id not in {c["case_id"] for c in cases}
    # buyer B's token against buyer A's data: the API filters by the token's org, not a parameter
    raw = httpx.get(
        f"{system.settings.notify_url}/api/digests",
        headers={"Authorization": f"Bearer {world.tokens['buyer_b']}"},
        verify=tls(),
    )
    assert raw.status_code == 200 and world.case_id not in raw.text


def test_operator_reads_content_and_identity(world: World) -> None:
    case = wait_for(
        lambda: _show_case(world),
        timeout=60,
        what="the case at triage",
    )
    assert case["content"] == world.secret_text
    assert case["identity"] == world.secret_identity
    assert case["severity"] == "critical"
    assert case["escalated"] is True


def _show_case(world: World) -> dict[str, object] | None:
    result = hotline(
        "cases",
        "show",
        world.case_id,
        "--key",
        str(world.keys["operator"]),
        "--json",
        token=world.tokens["operator"],
        check=False,
    )
    if result.returncode != 0:
        assert "404" in result.stderr, result.stderr
        return None
    shown: dict[str, object] = json.loads(result.stdout)
    return shown


def test_roles_are_enforced(world: World, system: LocalSystem) -> None:
    s = system.settings
    as_buyer = hotline(
        "cases",
        "show",
        world.case_id,
        "--key",
        str(world.keys["buyer_a"]),
        token=world.tokens["buyer_a"],
        check=False,
    )
    assert as_buyer.returncode != 0 and "403" in as_buyer.stderr
    no_token = httpx.get(f"{s.triage_url}/api/cases/{world.case_id}", verify=tls())
    assert no_token.status_code == 401
    as_operator = httpx.get(
        f"{s.notify_url}/api/digests",
        headers={"Authorization": f"Bearer {world.tokens['operator']}"},
        verify=tls(),
    )
    assert as_operator.status_code == 403
    not_admin = hotline(
        "admin",
        "factory",
        "add",
        "F-999",
        "--name",
        "X",
        "--country",
        "CN",
        token=world.tokens["operator"],
        check=False,
    )
    assert not_admin.returncode != 0 and "403" in not_admin.stderr


def test_every_event_of_the_case_is_in_the_audit_log(world: World) -> None:
    test_buyer_reads_the_case_decrypted_without_identity(world)
    test_operator_reads_content_and_identity(world)
    wanted = {"report.submitted", "case.triaged", "case.escalated", "envelope.disclosed"}

    def logged() -> set[str] | None:
        lines = hotline("audit", "entries", "--case", world.case_id).stdout.splitlines()
        types = {json.loads(line)["entry"]["type"] for line in lines}
        return types if wanted <= types else None

    wait_for(logged, timeout=60, what="the case's events in the audit log")
    entries = [
        json.loads(x)["entry"]
        for x in hotline("audit", "entries", "--case", world.case_id).stdout.splitlines()
    ]
    text = json.dumps(entries)
    assert world.secret_text not in text and "ciphertext" not in text
    disclosed = [e for e in entries if e["type"] == "envelope.disclosed"]
    assert {(e["principal"]["role"], e["class"]) for e in disclosed} >= {
        ("buyer", "content"),
        ("triage-analyst", "content"),
        ("triage-analyst", "identity"),
    }
    assert all(e["principal"]["role"] != "buyer" or e["class"] == "content" for e in disclosed)
    # The buyer's digest holding the case has its own entry, under `<buyer>:<seq>`.
    [case] = [c for c in pull_all(world, "buyer_a") if c["case_id"] == world.case_id]
    subject = f"{world.orgs['buyer_a']}:{case['digest']}"

    def digest_entries() -> list[dict[str, Any]]:
        lines = hotline("audit", "entries", "--case", subject).stdout.splitlines()
        return [json.loads(line)["entry"] for line in lines]

    [digest] = wait_for(digest_entries, timeout=60, what="the digest's entry in the audit log")
    assert digest["type"] == "digest.issued" and world.case_id in digest["cases"]


def test_bad_input_is_refused_with_a_clear_error(world: World, system: LocalSystem) -> None:
    unknown_factory = hotline(
        "submit", "--factory", "F-404", "--category", "wages", "--text", "x", check=False
    )
    assert unknown_factory.returncode != 0 and "F-404" in unknown_factory.stderr
    bad_category = hotline(
        "submit", "--factory", world.factory, "--category", "nonsense", "--text", "x", check=False
    )
    assert bad_category.returncode != 0 and "nonsense" in bad_category.stderr
    response = httpx.post(
        f"{system.settings.intake_url}/api/reports", json={"case_id": "nope"}, verify=tls()
    )
    assert response.status_code == 422
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    for bad_key in ("not base64!", "AAAA", "A" * 43 + "="):  # garbage, short, low-order zero key
        refused = httpx.post(
            f"{system.settings.triage_url}/api/admin/buyers",
            headers=admin,
            json={"buyer_id": "buyer-bad", "name": "Bad", "public_key": bad_key},
            verify=tls(),
        )
        assert refused.status_code == 422 and "public key" in refused.json()["detail"]
    duplicate = httpx.post(
        f"{system.settings.triage_url}/api/admin/factories",
        headers=admin,
        json={"code": world.factory, "name": "Again", "country": "CN"},
        verify=tls(),
    )
    assert duplicate.status_code == 409
    factories = httpx.get(
        f"{system.settings.triage_url}/api/admin/factories", headers=admin, verify=tls()
    ).json()
    assert [f["name"] for f in factories if f["code"] == world.factory] == ["Sunrise Toys"]


def test_no_submitted_word_in_plaintext_at_rest_or_in_logs(
    world: World, system: LocalSystem
) -> None:
    test_every_event_of_the_case_is_in_the_audit_log(world)  # everything has been written
    root = system.settings.data
    words = [
        w for w in re.findall(r"[a-z0-9]{8,}", world.secret_text + " " + world.secret_identity)
    ]
    assert words, "the secrets contain searchable words"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any("kafka" in str(p) for p in files) and any("mongo" in str(p) for p in files)
    for path in files:
        blob = path.read_bytes()
        for word in words:
            assert word.encode() not in blob, f"{word!r} found in plaintext in {path}"


def test_no_ip_address_in_any_log_or_document(world: World, system: LocalSystem) -> None:
    test_every_event_of_the_case_is_in_the_audit_log(world)
    ip = re.compile(rb"\b(?:\d{1,3}\.){3}\d{1,3}\b")
    for name in ("intake", "triage", "notify", "audit-log"):
        log = (system.settings.logs_dir / f"{name}.log").read_bytes()
        assert not ip.search(log), f"{name}.log contains an address: {ip.search(log)}"
        assert b'"GET /' not in log and b'"POST /' not in log, "no access log lines"


def test_no_ip_address_in_any_stored_document(world: World, system: LocalSystem) -> None:
    test_every_event_of_the_case_is_in_the_audit_log(world)

    ip = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
    with Mongo(system.settings.mongo_url) as client:
        for database in Databases(client, system.settings.mongo_db).names():
            for name in client[database].list_collection_names():
                for doc in client[database][name].find({}):
                    text = json.dumps(doc, default=str)
                    assert not ip.search(text), f"{name} holds an address: {ip.search(text)}"


def _cached_login(config_home: Path) -> tuple[Path, dict[str, object]]:
    path = config_home / "hotline" / "token.json"
    return path, json.loads(path.read_text())


def test_login_as_a_demo_user_caches_a_token_that_is_refreshed(
    world: World, tmp_path: Path
) -> None:
    """`hotline login --user NAME` caches a token (0600) that later commands use without
    HOTLINE_TOKEN, and refresh once it has expired."""
    logged_in = hotline("login", "--user", "operator", config_home=tmp_path)
    assert "Logged in as operator" in logged_in.stdout
    path, record = _cached_login(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    first = record["access_token"]
    path.write_text(json.dumps({**record, "expires_at": 0}))  # expired: must be refreshed
    listed = hotline("cases", "list", "--factory", world.factory, "--json", config_home=tmp_path)
    assert world.case_id in [case["case_id"] for case in json.loads(listed.stdout)["cases"]]
    _, refreshed = _cached_login(tmp_path)
    assert refreshed["access_token"] != first and refreshed["expires_at"] != 0
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_expired_login_says_which_login_to_run_again(world: World, tmp_path: Path) -> None:
    hotline("login", "--user", "operator", config_home=tmp_path)
    path, record = _cached_login(tmp_path)
    path.write_text(json.dumps({**record, "expires_at": 0, "refresh_token": "revoked"}))
    expired = hotline("cases", "list", config_home=tmp_path, check=False)
    assert expired.returncode != 0
    assert "your login has expired: run `hotline login --user operator` again" in expired.stderr
    path.unlink()
    missing = hotline("cases", "list", config_home=tmp_path, check=False)
    assert missing.returncode != 0 and "not logged in: run `hotline login`" in missing.stderr


def test_a_login_to_another_system_is_never_sent_here(world: World, tmp_path: Path) -> None:
    hotline("login", "--user", "operator", config_home=tmp_path)
    path, record = _cached_login(tmp_path)
    elsewhere = "http://127.0.0.1:9/realms/hotline/protocol/openid-connect/token"
    path.write_text(json.dumps({**record, "token_url": elsewhere}))
    refused = hotline("cases", "list", config_home=tmp_path, check=False)
    assert refused.returncode != 0 and "your login is for another system" in refused.stderr


def test_a_token_the_service_refuses_says_how_to_get_a_new_one(
    world: World, tmp_path: Path
) -> None:
    """The service's 401 (here a broken signature; an expired token takes the same path) is
    reported with its reason and what to run, for HOTLINE_TOKEN and for the login cache."""
    good = world.tokens["operator"]
    broken = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    from_env = hotline("cases", "list", token=broken, check=False)
    assert from_env.returncode != 0
    assert "the token was refused (token signature invalid)" in from_env.stderr
    assert "hotline dev-token --user NAME" in from_env.stderr
    assert "unset HOTLINE_TOKEN" in from_env.stderr
    hotline("login", "--user", "operator", config_home=tmp_path)
    path, record = _cached_login(tmp_path)
    path.write_text(json.dumps({**record, "access_token": broken}))
    from_cache = hotline("cases", "list", config_home=tmp_path, check=False)
    assert from_cache.returncode != 0
    assert "your login was refused: run `hotline login --user operator` again" in (
        from_cache.stderr
    )


def test_key_files_given_in_the_wrong_place_are_named(world: World) -> None:
    public = f"{world.keys['buyer_a']}.pub"
    as_private = hotline(
        "digests", "pull", "--key", public, "--out", str(world.folders / "never"),
        token=world.tokens["buyer_a"], check=False,
    )  # fmt: skip
    assert as_private.returncode != 0
    assert "is a public key" in as_private.stderr and "chmod" not in as_private.stderr
    as_public = hotline(
        "admin",
        "buyer",
        "add",
        "slice-never",
        "--name",
        "Never",
        "--public-key-file",
        str(world.keys["buyer_b"]),
        token=world.tokens["admin"],
        check=False,
    )
    assert as_public.returncode != 0 and "is a PRIVATE key" in as_public.stderr


def test_digests_pull_reports_a_case_it_cannot_open_and_goes_on(
    world: World, system: LocalSystem, tmp_path: Path
) -> None:
    """A damaged case (its envelope spoilt in notify's store before the digest was issued)
    is named on stderr with its reason; the others are still shown; the exit status says
    that something could not be opened."""
    settings = system.settings
    suffix = uuid.uuid4().hex[:6]
    factory, org = f"F-SD{suffix.upper()}", f"slice-d-{suffix}"
    buyer = token(settings, add_user(settings, "buyer", org))
    key = tmp_path / "buyer.key"
    hotline("keys", "generate", "--out", str(key))
    admin = world.tokens["admin"]
    hotline("admin", "factory", "add", factory, "--name", "D", "--country", "VN", token=admin)
    pub = f"{key}.pub"
    hotline("admin", "buyer", "add", org, "--name", "D", "--public-key-file", pub, token=admin)
    hotline("admin", "link", org, factory, token=admin)
    texts = {}
    for n in range(3):
        text = f"report {n} of {suffix}"
        submitted = hotline(
            "submit", "--factory", factory, "--category", "wages", "--text", text, "--print-case-id"
        )
        texts[submitted.stdout.strip()] = text
    first, *rest = texts
    with Mongo(settings.mongo_url) as client:
        items = Databases(client, settings.mongo_db).notify_items
        wait_for(
            lambda: items.count_documents({"buyer": org, "change": "new"}) == len(texts),
            timeout=60,
            what="three cases recorded for the buyer",
        )
        item = items.find_one({"_id": f"{org}:{first}"})
        assert item is not None
        ciphertext = bytearray(base64.b64decode(item["content"]["ciphertext"]))
        ciphertext[0] ^= 1
        items.update_one(
            {"_id": item["_id"]},
            {"$set": {"content.ciphertext": base64.b64encode(bytes(ciphertext)).decode()}},
        )
    issued = httpx.post(
        f"{settings.notify_url}/api/digests/issue",
        headers={"Authorization": f"Bearer {buyer}"},
        timeout=60,
        verify=tls(),
    )
    assert issued.status_code == 201, issued.text
    pulled = hotline(
        "digests", "pull", "--key", str(key), "--out", str(tmp_path / "digests"), token=buyer,
        check=False,
    )  # fmt: skip
    assert pulled.returncode == 1
    assert f"case {first}: cannot open it:" in pulled.stderr
    assert "1 of 3 cases could not be opened" in pulled.stderr
    assert texts[first] not in pulled.stdout
    assert all(texts[case_id] in pulled.stdout for case_id in rest)


@pytest.mark.usefixtures("local_engines_only")
def test_cases_and_events_survive_a_restart(world: World, system: LocalSystem) -> None:
    """Last in this module: stops services and engines, starts them on the same data."""
    test_every_event_of_the_case_is_in_the_audit_log(world)
    before = hotline("audit", "entries", "--limit", "1000").stdout.splitlines()
    system.stop_services()
    system.restart_engines(["kafka", "mongo"])
    system.start_services()
    assert (
        hotline("audit", "entries", "--limit", "1000").stdout.splitlines()[: len(before)] == before
    )
    test_buyer_reads_the_case_decrypted_without_identity(world)
    test_operator_reads_content_and_identity(world)
    # Kafka kept the consumer offsets: nothing was sequenced twice after the restart.
    after = [line for line in hotline("audit", "entries", "--limit", "1000").stdout.splitlines()]
    event_ids = [json.loads(line)["entry"]["event_id"] for line in after]
    assert len(event_ids) == len(set(event_ids))
