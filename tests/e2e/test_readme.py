"""The README walkthrough, run as written: its shell blocks, command by command, in one bash
session, in an empty working directory, against the session's system, whose ports are NOT
the defaults (so a command that assumed a port, or a token pasted by hand, fails here).

Nothing in the commands is changed. The reader's pace is the only liberty taken: a command
that shows what the system has not caught up with yet (`no new digests`, `404`, no entry in the log)
is run again until it shows it, as the README tells the reader to do.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.tlog.note import Ed25519Signer
from tests.support.waiting import wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
WALKTHROUGH = "## Submit a report and read it as a buyer"
STEP_TIMEOUT = 180.0  # seconds for one command; `audit verify` reads the whole session log
CATCH_UP_TIMEOUT = 90.0  # seconds a reader may wait for the system to catch up


def walkthrough_commands(readme: str) -> list[str]:
    """The shell commands of the walkthrough section's ```sh blocks, in order; a command
    continued with a trailing backslash is one command; comments and blank lines are not."""
    section = readme.split(WALKTHROUGH, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)
    commands: list[str] = []
    pending = ""
    for line in "".join(blocks).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            commands.append(pending.rstrip("\n"))
            pending = ""
    assert not pending, f"the walkthrough ends inside a continued command: {pending!r}"
    return commands


@dataclass
class Ran:
    command: str
    status: int
    output: str  # stdout and stderr, interleaved as a terminal shows them


Check = Callable[[Ran], bool]


class Shell:
    """One bash process the commands are typed into, so shell variables carry over."""

    MARK = "__readme_step_done__"

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self._bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._bash.stdout is not None
        for line in self._bash.stdout:
            self._lines.put(line)

    def run(self, command: str) -> Ran:
        assert self._bash.stdin is not None
        self._bash.stdin.write(f"{command}\nprintf '\\n{self.MARK} %s\\n' \"$?\"\n")
        self._bash.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{command!r} did not finish in {STEP_TIMEOUT:.0f}s:\n{''.join(output)}"
                ) from None
            if line.startswith(self.MARK):
                # The marker line starts with a newline of its own: strip it with the rest.
                return Ran(command, int(line.split()[1]), "".join(output).rstrip("\n"))
            output.append(line)

    def close(self) -> None:
        if self._bash.stdin is not None:
            self._bash.stdin.close()
        self._bash.wait(timeout=30)


@pytest.fixture
def shell(system: Any, tmp_path: Path) -> Iterator[Shell]:
    """A new terminal in an empty directory: the session's HOTLINE_* settings, the venv's
    `hotline` first on PATH, no HOTLINE_TOKEN and no login cache of its own yet."""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_TOKEN"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    terminal = Shell(work, env)
    try:
        yield terminal
    finally:
        terminal.close()


def _option(command: str, name: str) -> str:
    words = shlex.split(command.replace("\\\n", " ").removeprefix("CASE_ID=$(").rstrip(")"))
    return words[words.index(name) + 1]


def test_the_readme_walkthrough_runs_as_written_on_other_ports(
    system: Any, shell: Shell, tmp_path: Path
) -> None:
    settings: Settings = system.settings
    defaults = Settings.model_fields
    for port in ("intake_port", "triage_port", "notify_port", "audit_port", "keycloak_port"):
        assert getattr(settings, port) != defaults[port].default, f"{port} is the default"
    commands = walkthrough_commands(README.read_text())
    [submit] = [c for c in commands if "hotline submit" in c]
    text, identity = _option(submit, "--text"), _option(submit, "--identity")
    [ask] = [c for c in commands if "hotline digests ask" in c]
    question = _option(ask.removeprefix("QUESTION_ID=$("), "--text")
    replies = [_option(c, "--text") for c in commands if c.startswith("hotline cases reply")]
    served_vkey = httpx.get(f"{settings.audit_url}/vkey", verify=tls()).text.strip()
    work = tmp_path / "work"
    state: dict[str, str] = {}

    def case_id() -> str:
        return state["case_id"]

    # What each step must show, by the command's start; a step marked `again` is one a reader
    # runs again until the system has caught up. Every step listed must be in the README.
    # (Output is stdout and stderr as one terminal shows them, so order is not relied on.)
    expected: dict[str, tuple[Check, bool]] = {
        "hotline keys generate": (
            lambda r: re.search(r"^x25519:[0-9a-f]{64}$", r.output, re.M) is not None,
            False,
        ),
        "hotline login --user": (lambda r: "Logged in as" in r.output, False),
        "hotline admin": (lambda r: "added" in r.output or "linked" in r.output, False),
        "hotline admin retention set": (
            lambda r: "identity deleted 30 days after closure" in r.output,
            False,
        ),
        "hotline categories": (lambda r: "safety" in r.output, False),
        "CASE_ID=$(hotline submit": (lambda r: _remember_receipt(r, state), False),
        'echo "$CASE_ID"': (lambda r: _remember_case(r, state), False),
        "hotline digests pull": (
            lambda r: text in r.output and identity not in r.output and case_id() in r.output,
            True,
        ),
        "hotline digests verify --all": (lambda r: "VERIFIED:" in r.output, True),
        "hotline cases show": (
            lambda r: text in r.output and f"identity: {identity}" in r.output,
            True,
        ),
        "hotline cases reply": (lambda r: "sent to the worker of case" in r.output, False),
        "QUESTION_ID=$(hotline digests ask": (lambda r: r.output == "", False),
        "hotline cases messages": (lambda r: question in r.output, True),
        "hotline cases forward": (lambda r: "forwarded to the worker" in r.output, True),
        "hotline cases claim": (lambda r: f"case {case_id()} is yours" in r.output, False),
        "hotline cases status": (
            lambda r: (
                re.search(
                    rf"case {case_id()} is (investigating|remediation|resolved)$", r.output.strip()
                )
                is not None
            ),
            False,
        ),
        "hotline stats --csv": (
            lambda r: r.output.startswith("factory,category,month,") and "F-001" in r.output,
            False,
        ),
        "hotline audit entries": (
            lambda r: '"envelope.disclosed"' in r.output and text not in r.output,
            True,
        ),
        "hotline audit vkey": (lambda r: served_vkey in r.output.splitlines(), False),
        "hotline audit verify": (
            lambda r: "VERDICT: OK" in r.output and "trust on first use" in r.output,
            False,
        ),
        "hotline audit prove": (lambda r: f"of case {case_id()} proven" in r.output, True),
        "hotline audit check-proof": (lambda r: "PROOF OK" in r.output, False),
    }
    seen: set[str] = set()
    for command in commands:
        # The most specific step the command starts with (`hotline admin retention set`
        # before `hotline admin`).
        step = max((s for s in expected if command.startswith(s)), key=len, default=command)
        seen.add(step)
        check, again = expected.get(step, (lambda r: True, False))
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while True:
            ran = shell.run(command)
            if ran.status == 0 and check(ran):
                break
            if not again or time.monotonic() > deadline:
                raise AssertionError(
                    f"README command failed (exit {ran.status}):\n$ {command}\n{ran.output}"
                )
    assert seen >= set(expected), f"steps missing from the README: {set(expected) - seen}"

    # The worker, with the receipt the terminal showed, reads the operator's messages and the
    # forwarded question on the status page (here its no-JS form: the page's script is
    # tested in tests/e2e/test_status_page.py).
    def worker_reads_them() -> bool:
        page = httpx.post(
            f"{settings.intake_url}/en/status", data={"receipt": state["receipt"]}, verify=tls()
        )
        return page.status_code == 200 and all(t in page.text for t in [*replies, question])

    wait_for(worker_reads_them, timeout=CATCH_UP_TIMEOUT, what="the messages on the status page")

    # The auditor checked THIS system's log, and pinned the key it serves.
    pinned = json.loads((work / "audit-state.json").read_text())
    assert pinned["vkey"] == served_vkey and pinned["origin"] == settings.audit_origin
    assert (work / "operator.key").stat().st_mode & 0o777 == 0o600
    # Once pinned, another key for the same log name is refused, not silently trusted.
    impostor = Ed25519Signer(settings.audit_origin, secrets.token_bytes(32)).verifier().vkey()
    refused = shell.run(f"hotline audit verify --state audit-state.json --vkey '{impostor}'")
    assert refused.status != 0 and "pinned another key" in refused.output, refused.output


def _remember_receipt(ran: Ran, state: dict[str, str]) -> bool:
    found = re.search(r"receipt: ((?:\d{4} ){9}\d{4})", ran.output)
    if found is None:
        return False
    state["receipt"] = found.group(1)
    return True


def _remember_case(ran: Ran, state: dict[str, str]) -> bool:
    if not re.fullmatch(r"[0-9a-f-]{36}", ran.output):
        return False
    state["case_id"] = ran.output
    return True


def test_the_walkthrough_is_found_and_split_into_commands() -> None:
    """The extraction itself: a continued command stays one command; comments are dropped."""
    commands = walkthrough_commands(README.read_text())
    [submit] = [c for c in commands if "hotline submit" in c]
    assert submit.startswith("CASE_ID=$(hotline submit") and "--print-case-id)" in submit
    assert not any(c.lstrip().startswith("#") for c in commands)
    assert not any(re.search(r"127\.0\.0\.1|:80\d\d\b|HOTLINE_TOKEN", c) for c in commands)
