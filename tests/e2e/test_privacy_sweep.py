"""The privacy sweep (issue 20, Privacy), run after every other test of the session.

After all the session did, no submitted word is in any file under the session's data
directory (the MongoDB-wire server's database files, Kafka's log segments, Keycloak's
files, every engine's and service's log), and no service log line holds a client address or
a user agent.

The words are the distinctive phrases the session's tests submit (report texts, identities,
replies, questions, notes; through the CLI, the form with and without JavaScript, and the
API: `SUBMITTED_BY_TESTS`), and a canary this module submits first through the running
system: a report sealed by the CLI, one through the form without JavaScript (sealed by
intake, in memory), the worker's answer without JavaScript and an operator's reply. The
property is plain text: a phrase's UTF-8 bytes (and, for non-ASCII text, its JSON escape,
which is how a JSON line or document would hold it) appear nowhere; ciphertext is all
there may be.

The sweep must see what it claims to see: the canary's case id (routing metadata, plain
text by design) is found in a database file and in a Kafka segment.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.cli.engines.local import SERVICES, LocalSystem
from hotline.cli.http import tls
from hotline.shared.config import Settings
from tests.support.cli import hotline, hotline_json
from tests.support.realm import add_user
from tests.support.registry import AdminApi, Party, unique_factory_code
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.runs_last, pytest.mark.timeout(900)]

# What the session's tests submit, in the words a leak would show (their random suffixes
# are left out: the fixed part is what is searched). Kept in step with the tests by hand.
SUBMITTED_BY_TESTS = [
    "fire exit blocked by pallets",  # e2e/test_slice.py: report text
    "Li Wei phone 138",  # e2e/test_slice.py: identity
    "The fire exit on floor 3 is locked at night",  # README walkthrough, test_webhooks.py
    "Li, line 4",  # README walkthrough: identity
    "We have your report. We will visit the factory this week.",  # README: reply
    "Is the door on floor 3 locked every night?",  # README: question to the worker
    "How many workers are on the night shift?",  # README: buyer's question
    "were the fire drills held?",  # test_conversation.py: buyer's question
    "收到，我们会跟进",  # test_conversation.py: operator's reply in Chinese
    "unpaid since May",  # test_conversation.py: report text
    "Wang, dormitory 3",  # test_digests.py: identity
    "Wages unpaid for three months",  # e2e/test_console.py: report text
    "Li Wei, dormitory 4",  # e2e/test_console.py: identity
    "called the auditor",  # test_casework.py: operator's note
    "The fire exit is blocked by pallets every night",  # e2e/test_worker_form.py (en)
    "消防通道被货物堵住了",  # e2e/test_worker_form.py (zh-hans)
    "No nos pagan las horas extra",  # test_pages.py: report without JavaScript
    "sprinkler valves shut before the audit",  # test_kafka_outage.py
    "night shift doors chained from outside",  # test_kafka_outage.py
    "wages withheld for",  # test_kafka_outage.py: reports accepted during the outage
]
USER_AGENTS = ["python-httpx", "HeadlessChrome", "Mozilla", "Chrome/", "curl/", "python-requests"]
# A client address as a log line would hold it: any IPv4 address, or IPv6 loopback.
ADDRESS = re.compile(rb"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])|(?<![0-9A-Fa-f:])::1(?![\d:])")
ENGINE_LOGS = {"kafka.log", "keycloak.log", "mongo.log"}
RECEIPT_CODE = re.compile(r'id="receipt-code"[^>]*>([\d ]+)<')
LOOKUP_TOKEN = re.compile(r'name="lookup_token" value="([0-9a-f]+)"')


@dataclass(frozen=True)
class Canary:
    factory: str
    sealed_case: str  # submitted by the CLI, sealed on this machine
    phrases: list[str]


def _post_form(settings: Settings, path: str, fields: dict[str, str]) -> httpx.Response:
    """POST the worker's page's form as a browser without JavaScript sends it (multipart,
    the empty file inputs as empty file parts)."""
    files = [("photo", ("", b"", "application/octet-stream"))]
    if path.endswith("/report"):
        files.append(("voice", ("", b"", "application/octet-stream")))
    return httpx.post(
        f"{settings.intake_url}{path}", data=fields, files=files, timeout=120, verify=tls()
    )


def _case_ids_at(settings: Settings, token: str, factory: str) -> set[str]:
    response = httpx.get(
        f"{settings.triage_url}/api/cases",
        params={"factory": factory},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        verify=tls(),
    )
    response.raise_for_status()
    return {case["case_id"] for case in response.json()["cases"]}


def _logged_types(settings: Settings, case_id: str) -> set[str]:
    response = httpx.get(
        f"{settings.audit_url}/api/entries", params={"case": case_id}, timeout=30, verify=tls()
    )
    response.raise_for_status()
    return {item["entry"]["type"] for item in response.json()}


@pytest.fixture(scope="module")
def canary(system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Canary:
    """Canary reports, an answer and a reply through the running system, each arrived
    everywhere it goes (triage, the buyer's digest, the audit log) before the sweep."""
    settings = system.settings
    admin = AdminApi(settings)
    operator_key = admin.operator_key_file(tmp_path_factory.mktemp("canary"))
    factory = unique_factory_code()
    admin.created("factories", {"code": factory, "name": "Canary Toys", "country": "CN"})
    buyer = f"canary-{uuid.uuid4().hex[:8]}"
    admin.created(
        "buyers", {"buyer_id": buyer, "name": "Canary Buyer", "public_key": Party.new().public_b64}
    )
    admin.created("links", {"buyer_id": buyer, "factory": factory})
    buyer_user = add_user(settings, "buyer", buyer)
    marker = uuid.uuid4().hex[:12]
    phrases = {
        "text": f"canary report of locked gates cq{marker}",
        "identity": f"canary worker Zhang San cqid{marker}",
        "form_text": f"canary form report of unpaid overtime cqform{marker}",
        "form_contact": f"canary form contact Wang Fang cqcontact{marker}",
        "answer": f"canary worker answer about the gates cqanswer{marker}",
        "reply": f"canary operator reply about the visit cqreply{marker}",
    }
    sealed = hotline_json(
        "submit", "--factory", factory, "--category", "safety", "--urgent",
        "--text", phrases["text"], "--identity", phrases["identity"],
    )  # fmt: skip
    case_id: str = sealed["case_id"]
    receipt_page = _post_form(
        settings,
        "/en/report",
        {
            "factory": "",
            "factory_pick": factory,
            "category": "wages",
            "urgent": "yes",
            "text": phrases["form_text"],
            "contact": phrases["form_contact"],
        },
    )
    assert receipt_page.status_code == 200, receipt_page.text[:500]
    found_receipt = RECEIPT_CODE.search(receipt_page.text)
    assert found_receipt, "the form's receipt page shows the receipt"
    operator = password_token(settings, "operator", "operator")
    wait_for(
        lambda: len(_case_ids_at(settings, operator, factory)) == 2,
        timeout=120,
        what="both canary reports at triage",
    )
    status_page = _post_form(settings, "/en/status", {"receipt": found_receipt.group(1)})
    found_token = LOOKUP_TOKEN.search(status_page.text)
    assert found_token, status_page.text[:500]
    answered = _post_form(
        settings,
        "/en/answer",
        {"lookup_token": found_token.group(1), "text": phrases["answer"]},
    )
    assert answered.status_code == 200, answered.text[:500]
    hotline("cases", "reply", case_id, "--text", phrases["reply"], token=operator)
    shown = hotline_json("cases", "show", case_id, "--key", str(operator_key), token=operator)
    assert shown["content"] == phrases["text"]  # the canary is what was sealed, and readable
    buyer_token = password_token(settings, buyer_user, buyer_user)

    def pulled() -> bool:
        response = httpx.get(
            f"{settings.notify_url}/api/digests",
            headers={"Authorization": f"Bearer {buyer_token}"},
            timeout=60,
            verify=tls(),
        )
        response.raise_for_status()
        return case_id in response.text

    wait_for(pulled, timeout=120, what="the canary in the buyer's digest, handed out")
    wait_for(
        lambda: (
            {"report.submitted", "envelope.disclosed", "message.posted"}
            <= _logged_types(settings, case_id)
        ),
        timeout=120,
        what="the canary's report, hand-out and reply in the audit log",
    )
    return Canary(factory, case_id, list(phrases.values()))


@dataclass
class Searched:
    files: int = 0
    bytes: int = 0


def _data_files(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            yield path, path.read_bytes()
        except FileNotFoundError:  # gone since the listing (a rolled segment, a temp file)
            continue


def _forms(phrase: str) -> list[bytes]:
    """The phrase's UTF-8 bytes, and for non-ASCII text its JSON escape as well."""
    forms = [phrase.encode()]
    escaped = json.dumps(phrase)[1:-1].encode()
    if escaped not in forms:
        forms.append(escaped)
    return forms


@pytest.fixture(scope="module")
def sweep(system: LocalSystem, canary: Canary) -> dict[str, Any]:
    """One pass over every file under the data directory: what was found where."""
    phrases = SUBMITTED_BY_TESTS + canary.phrases
    needles = {form: phrase for phrase in phrases for form in _forms(phrase)}
    pattern = re.compile(b"|".join(re.escape(form) for form in needles))
    case_id = canary.sealed_case.encode()
    searched, found, case_id_in = Searched(), [], set()
    root = system.settings.data
    for path, blob in _data_files(root):
        searched.files += 1
        searched.bytes += len(blob)
        for match in pattern.finditer(blob):
            found.append((str(path.relative_to(root)), needles[match.group()]))
        if case_id in blob:
            case_id_in.add(path.relative_to(root).parts[0])
    return {"searched": searched, "found": found, "case_id_in": case_id_in, "phrases": phrases}


def test_the_sweep_reads_the_database_and_the_kafka_segments(
    sweep: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    searched: Searched = sweep["searched"]
    with capsys.disabled():
        print(
            f"\nprivacy sweep: {len(sweep['phrases'])} phrases in {searched.files} files, "
            f"{searched.bytes / 2**20:.1f} MiB under the data directory"
        )
    assert {"mongo", "kafka"} <= sweep["case_id_in"], sweep["case_id_in"]


def test_no_submitted_word_is_in_any_file_under_the_data_directory(
    sweep: dict[str, Any],
) -> None:
    assert sweep["found"] == [], f"plain text at rest: {sweep['found'][:20]}"


def _service_logs(settings: Settings) -> list[Path]:
    """Every service process's log (replicas and the tests' own instances included)."""
    logs = sorted(settings.logs_dir.glob("*.log"))
    return [p for p in logs if p.name not in ENGINE_LOGS and p.name.startswith(tuple(SERVICES))]


def test_no_service_log_line_holds_a_client_address_or_a_user_agent(
    system: LocalSystem, canary: Canary
) -> None:
    logs = _service_logs(system.settings)
    assert {p.name for p in logs} >= {f"{name}.log" for name in SERVICES}, logs
    for path in logs:
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            address = ADDRESS.search(line)
            assert address is None, f"{path.name}:{number} holds an address: {line[:300]!r}"
            lowered = line.lower()
            for agent in USER_AGENTS:
                assert agent.lower().encode() not in lowered, f"{path.name}:{number}: {agent}"
