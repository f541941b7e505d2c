"""What the local engines need of the machine, without starting one: where their distributions
live, which Java version a `java -version` names, and the progress a person sees."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from hotline.cli.engines import process
from hotline.cli.engines.process import EngineError, ManagedProcess
from hotline.shared.config import DEFAULT_DATA_DIR, DEFAULT_ENGINES_DIR, Settings


def test_engines_are_the_machines_whatever_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HOTLINE_ENGINES", raising=False)
    monkeypatch.setenv("HOTLINE_DATA", str(tmp_path / "elsewhere"))
    assert Settings().engines_dir == DEFAULT_ENGINES_DIR == DEFAULT_DATA_DIR / "engines"
    assert Settings(data=tmp_path / "other").engines_dir == DEFAULT_ENGINES_DIR


def test_hotline_engines_moves_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOTLINE_ENGINES", str(tmp_path / "engines"))
    assert Settings(data=tmp_path / "data").engines_dir == tmp_path / "engines"


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "25.0.2" 2026-01-20 LTS\nOpenJDK Runtime Environment Temurin', 25),
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("bash: java: command not found", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert process.java_major(output) == major


def test_waiting_on_an_engine_says_what_for_and_since_when(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(process, "PROGRESS_EVERY", 0.0)  # a line at every poll
    child = ManagedProcess(
        "engine", [sys.executable, "-c", "import signal; signal.pause()"], tmp_path / "engine.log"
    )
    polls = iter([False, False, True])
    child.start()
    try:
        child.wait_until(lambda: next(polls), timeout=60, what="its port to answer")
    finally:
        child.stop()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("  engine: ") for line in lines)
    assert all(line.endswith(" s, waiting for its port to answer") for line in lines)


def test_a_failed_step_says_so_with_its_output(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "print('no such artifact'); raise SystemExit(3)"]
    with pytest.raises(EngineError, match=r"(?s)fetch failed \(exit 3\).*no such artifact"):
        process.run_to_completion("fetch", command, tmp_path / "fetch.log")


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    """What scripts/benchmarks.sh gives `hotline up`: no outgoing connection can take one."""
    below = int(process.EPHEMERAL_PORTS.read_text().split()[0])
    ports = process.free_ports(50)
    assert len(set(ports)) == 50
    assert all(process.LOWEST_LISTEN_PORT <= port < below for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
