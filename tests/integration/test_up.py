"""`hotline up` as a person runs it, and the helpers of every test that runs it: on a data
directory and ports of its own, whose engines are still the machine's. Starting everything,
saying where, and stopping it all on Ctrl-C are tested with supervision and replicas, in one
`hotline up` (test_supervision.py); here, what `up` refuses before it starts anything.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.cli.engines.process import free_port

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
    # How this machine keeps and runs the engines: where they are, and their JVMs' options.
    keep = {"HOTLINE_ENGINES", "HOTLINE_ENGINE_JAVA_OPTIONS"}
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


def processes_of(data: Path) -> dict[int, tuple[str, list[bytes]]]:
    """pid -> (command line, environment) of the live processes of the system on `data` (the
    services name it in their environment only; the engines in their command lines too)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"HOTLINE_DATA={data}".encode() in environ or str(data) in cmdline:
            found[int(proc.name)] = (cmdline, environ)
    return found


def java_processes_of(data: Path) -> dict[int, str]:
    """pid -> executable of the live Java processes of the system on `data`."""
    found = {}
    for pid in processes_of(data):
        try:
            executable = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if Path(executable).name == "java":
            found[pid] = executable
    return found


def test_up_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = up_env(tmp_path / "data", HOTLINE_INTAKE_PORT=str(port))
        result = up_failing(env)
    assert result.returncode != 0
    assert f"intake port {port}" in result.stderr and "in use" in result.stderr
    assert processes_of(tmp_path / "data") == {}
