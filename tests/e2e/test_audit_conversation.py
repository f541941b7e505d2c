"""The conversation's rules of `hotline audit verify`, as a compliance officer meets them.

A real case: a factory and an operator key registered with the admin CLI, a report
submitted with the CLI (intake publishes it with the reply key the receipt derives), a
factory's key in the log. Its conversation: an operator's reply sealed to the reply key, a
buyer's question sealed to the operator key and forwarded (re-sealed to the reply key, and
disclosed to the worker), and the worker's answer with a photo, sealed to the operator key.
The session's log then verifies, and says of the conversation only its shape.

The messages are published to Kafka here, as triage, notify and intake publish them: the
audit log reads events, whoever published them.

The rogue reply (sealed to the factory's key) is NOT published to the session's Kafka: the
session's log is append-only and every later test that verifies it (test_audit_verify.py,
the README's) would fail for good. It goes into a log of its own (a separate audit-log
process over its own database), which holds the case's events exactly as the broker holds
them, read back from Kafka, and then the rogue reply: that log verifies without the reply,
and fails with it, naming the rule.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventError, EventType, parse_event, topic_for
from hotline.shared.keys import b64encode, key_id, load_public_key
from hotline.shared.messages import WORKER
from hotline.shared.receipt import derive_receipt
from hotline.shared.roles import Role
from tests.support.audit import (
    LogInstance,
    Org,
    forward,
    keys_of,
    message,
    publish_events,
    served_size,
    system_entries,
)
from tests.support.cli import hotline, hotline_json
from tests.support.tokens import password_token
from tests.support.topics import records_on
from tests.support.waiting import wait_for

RULE = "messages-to-the-worker-sealed-to-its-reply-key-only"


@dataclass
class Conversation:
    case_id: str
    vkey: str
    factory: Org  # a factory's key, registered in the log
    reply_key: dict[str, bytes]  # key id -> the worker's reply public key
    operator_key: dict[str, bytes]
    published: list[Event]  # the messages (and the forward's disclosure), in order


@pytest.fixture(scope="module")
def conversation(system: Any, tmp_path_factory: pytest.TempPathFactory) -> Conversation:
    settings = system.settings
    admin = password_token(settings, "admin", "admin")
    key = tmp_path_factory.mktemp("conversation-keys") / "operator.key"
    hotline("keys", "generate", "--out", str(key))
    code = f"F-CNV-{uuid.uuid4().hex[:6].upper()}"
    hotline(
        "admin", "factory", "add", code, "--name", "Talking Toys", "--country", "VN", token=admin
    )
    hotline("admin", "operator-key", "add", "--public-key-file", f"{key}.pub", token=admin)
    factory = Org(code, "factory")
    publish_events(settings, [factory.registered()])
    submitted = hotline_json(
        "submit",
        "--factory",
        code,
        "--category",
        "safety",
        "--text",
        "blocked exit",
        "--identity",
        "a worker's name",
    )
    case_id = submitted["case_id"]
    derived = derive_receipt(submitted["receipt"])  # what the worker's phone derives
    reply_key = {key_id(derived.reply_public): derived.reply_public}
    operator_public = load_public_key(Path(f"{key}.pub"))
    operator_key = {key_id(operator_public): operator_public}

    # The report is held back until its identity's recipients (the operator keys) are in
    # the log: once it is logged, the operator key is registered earlier.
    def report_logged() -> dict[str, Any] | None:
        entries = [e["entry"] for e in system_entries(settings, case_id)]
        return next((e for e in entries if e["type"] == EventType.REPORT_SUBMITTED), None)

    report = wait_for(report_logged, timeout=90, what="the report in the audit log")
    assert report["reply_key"] == next(iter(reply_key)), "the report names its reply key"

    question = message(case_id, "question", Role.BUYER, operator_key)
    published = [
        message(case_id, "reply", Role.OPERATOR, reply_key),
        question,
        *forward(question, reply_key, Role.OPERATOR),
        message(case_id, "answer", WORKER, operator_key, photos=1),
    ]
    publish_events(settings, published)
    wait_for(
        lambda: in_a_checkpoint(settings, case_id, {e.id for e in published}),
        timeout=90,
        what="the conversation in a checkpoint of the audit log",
    )
    vkey = httpx.get(f"{settings.audit_url}/vkey", verify=tls()).text.strip()
    return Conversation(case_id, vkey, factory, reply_key, operator_key, published)


def in_a_checkpoint(settings: Settings, case_id: str, event_ids: set[str]) -> bool:
    """Whether every event of `event_ids` is logged, under a served checkpoint."""
    entries = system_entries(settings, case_id)
    logged = {e["index"] for e in entries if e["entry"]["event_id"] in event_ids}
    return len(logged) == len(event_ids) and served_size(settings.audit_url) > max(logged)


def test_a_conversation_sealed_as_the_rules_say_verifies(
    conversation: Conversation, tmp_path: Path
) -> None:
    state = str(tmp_path / "state.json")
    verdict = hotline("audit", "verify", "--vkey", conversation.vkey, "--state", state)
    assert "VERDICT: OK" in verdict.stdout, verdict.stdout
    shown = [line for line in verdict.stdout.splitlines() if line.startswith("conversation:")]
    assert shown and "messages to workers against their reply keys" in shown[0], verdict.stdout
    counts = hotline_json("audit", "verify", "--vkey", conversation.vkey)["policy"]
    assert counts["messages_to_worker"] >= 2  # the reply and the forward
    assert counts["answers_and_questions"] >= 2 and counts["forwards"] >= 1


def test_the_public_log_shows_the_conversation_s_shape_not_its_words(
    conversation: Conversation, system: Any
) -> None:
    entries = [e["entry"] for e in system_entries(system.settings, conversation.case_id)]
    messages = [e for e in entries if e["type"] == EventType.MESSAGE_POSTED]
    assert [(m["kind"], m["author_role"], len(m["envelopes"])) for m in messages] == [
        ("reply", Role.OPERATOR, 1),
        ("question", Role.BUYER, 1),
        ("forward", Role.OPERATOR, 1),
        ("answer", WORKER, 2),  # its message and its photo
    ]
    [reply_kid], [operator_kid] = conversation.reply_key, conversation.operator_key
    assert [m["envelopes"][0]["recipients"] for m in messages] == [
        [reply_kid],
        [operator_kid],
        [reply_kid],
        [operator_kid],
    ]
    assert messages[2]["in_reply_to"] == messages[1]["message_id"]
    forwarded = messages[2]["envelopes"][0]["hash"]
    disclosures = [e for e in entries if e["type"] == EventType.ENVELOPE_DISCLOSED]
    assert [
        (d["class"], d["principal"]["role"]) for d in disclosures if d["envelope_hash"] == forwarded
    ] == [("message", WORKER)]
    public = json.dumps(entries)
    assert "ciphertext" not in public and "words" not in public
    assert b64encode(conversation.reply_key[reply_kid]) not in public  # its key id only


def the_case_as_the_broker_holds_it(settings: Settings, case_id: str) -> list[Event]:
    """Every registration, then the case's report, messages and disclosures, as any client
    of the broker reads them from the topics (the order a consuming log may sequence them)."""
    registrations = (EventType.KEY_REGISTERED, EventType.REGISTRY_CHANGED)
    of_the_case = (
        EventType.REPORT_SUBMITTED,
        EventType.MESSAGE_POSTED,
        EventType.ENVELOPE_DISCLOSED,
    )
    events: list[Event] = []
    for event_type in registrations + of_the_case:
        for raw in asyncio.run(records_on(settings, topic_for(event_type))):
            try:
                event = parse_event(raw)
            except EventError:
                continue  # another test's poison message
            if event_type in registrations or event.subject == case_id:
                events.append(event)
    return events


def test_a_reply_sealed_to_a_factory_key_fails_verification(
    conversation: Conversation, system: Any, mongo_engine: Any
) -> None:
    case = the_case_as_the_broker_holds_it(system.settings, conversation.case_id)
    assert {e.id for e in conversation.published} <= {e.id for e in case}
    rogue = message(conversation.case_id, "reply", Role.OPERATOR, keys_of(conversation.factory))
    instance = LogInstance(system.settings, "audit_conversation_rogue")
    instance.sequence(case)
    instance.start()
    try:
        instance.wait_for_size(len(case))
        verify = ("audit", "verify", "--log", instance.url, "--vkey", instance.vkey)
        clean = hotline(*verify, check=False)
        instance.sequence([rogue])
        instance.wait_for_size(len(case) + 1)
        result = hotline(*verify, check=False)
        as_json = json.loads(hotline(*verify, "--json", check=False).stdout)
    finally:
        instance.stop()
    assert clean.returncode == 0 and "VERDICT: OK" in clean.stdout, clean.stdout
    assert result.returncode == 1 and "VERDICT: FAILED (1 failure(s))" in result.stdout
    [failure] = [line for line in result.stdout.splitlines() if "FAIL " in line]
    assert f"entry {len(case)}: " in failure and f"[rule {RULE}]" in failure, failure
    code = conversation.factory.org
    assert f"{conversation.factory.key_id} (registered for {code}, a factory, at entry" in failure
    assert not as_json["ok"]
    assert [(f["rule"], f["index"]) for f in as_json["failures"]] == [(RULE, len(case))]
