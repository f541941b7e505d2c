"""Child processes of `hotline up` and of the test session: start, wait healthy, stop.

Every engine and service runs in its own process group so that stopping it also stops
whatever it spawned (Keycloak's and Kafka's JVMs), leaving no Java process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import httpx

# The pinned engine files (poms, broker properties, topics, realm) ship inside the package
# (`deploy/` is the package `hotline.deploy`), so an installed wheel finds them too.
DEPLOY: Traversable = files("hotline.deploy")


class EngineError(RuntimeError):
    """An engine could not be prepared or started; the message says what to do."""


def say(message: str) -> None:
    """Progress for the person waiting; on stderr so that --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


def require_java() -> str:
    """Path of `java`, or a clear message saying what to install."""
    java_home = os.environ.get("JAVA_HOME")
    candidates = [Path(java_home) / "bin" / "java"] if java_home else []
    found = shutil.which("java")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise EngineError(
        "Java 17 or newer is required to run Kafka and Keycloak locally. Install it "
        "(Debian/Ubuntu: `apt-get install openjdk-17-jre-headless maven`) and run again."
    )


def require_maven() -> str:
    found = shutil.which("mvn")
    if not found:
        raise EngineError(
            "Maven is required to fetch the pinned Kafka and Keycloak artifacts. Install it "
            "(Debian/Ubuntu: `apt-get install maven`) and run again."
        )
    return found


def maven(pom: Traversable, workdir: Path, *goals: str) -> None:
    """Run Maven on one of the pinned poms of `hotline.deploy`, copied into `workdir` (Maven
    writes `target/` beside its pom, and an installed package is no place for that)."""
    workdir.mkdir(parents=True, exist_ok=True)
    local_pom = workdir / "pom.xml"
    local_pom.write_text(pom.read_text(encoding="utf-8"), encoding="utf-8")
    cmd = [require_maven(), "-B", "--no-transfer-progress", "-f", str(local_pom), *goals]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-30:])
        raise EngineError(f"Maven failed for {pom}:\n{tail}")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    taken = [f"{name} port {port}" for name, port in ports.items() if not port_is_free(host, port)]
    if taken:
        raise EngineError(
            "Already in use on "
            + host
            + ": "
            + ", ".join(taken)
            + ". Stop whatever holds it, or choose other ports with HOTLINE_*_PORT variables."
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tcp_ready(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@dataclass
class ManagedProcess:
    """One child process in its own group, its output in a log file."""

    name: str
    command: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.popen = subprocess.Popen(
            list(self.command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` until true; fail early, with the log's tail, if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise EngineError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise EngineError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after `grace` seconds."""
        if self.popen is None or self.popen.poll() is not None:
            return
        pgid = self.popen.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # stragglers in the group, if any
        except ProcessLookupError:
            pass
        self.popen.wait()
