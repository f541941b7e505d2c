"""`hotline up` as a person runs it: starts everything, reports where, stops it all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hotline.cli.engines.process import free_port, port_is_free
from hotline.shared.config import DEFAULT_DATA_DIR
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["HOTLINE_DATA"] = str(data)
    env["HOTLINE_ENGINES"] = os.environ.get("HOTLINE_ENGINES", str(DEFAULT_DATA_DIR / "engines"))
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


@pytest.mark.usefixtures("local_system")  # engines prepared (downloaded and built) already
def test_up_starts_everything_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    env = up_env(data)
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
        assert any("java" in p for p in processes_using(data)), "Kafka and Keycloak run"
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


def test_up_without_java_says_what_to_install(tmp_path: Path) -> None:
    env = up_env(tmp_path / "data", HOTLINE_ENGINES=str(tmp_path / "no-engines"))
    env["PATH"] = str(Path(sys.executable).parent)  # this venv only: no java, no mvn
    env.pop("JAVA_HOME", None)
    result = up_failing(env)
    assert result.returncode != 0
    assert "Java 17 or newer is required" in result.stderr
    assert "Traceback" not in result.stderr
