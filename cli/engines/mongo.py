"""The local MongoDB wire: nx-27017 (the MongoDB wire protocol on SQLite), a PyPI dependency.

Nothing is downloaded: nx-27017 is installed with the project. It runs in the foreground,
with the interpreter that runs this code (`sys.executable`), so it works from any venv,
on `settings.host:settings.mongo_port`. Everything it keeps is under `<data>/mongo`: one
SQLite file per logical database in `db/` and its pid file. Its log goes to standard error,
i.e. `<data>/logs/mongo.log`, and nowhere else.

Its `nx_27017` logger is held at WARNING: at INFO it writes every command document it does
not handle itself (`Calling db.command with: {...}`) to its log, i.e. stored data, and our
logging policy keeps data out of logs; and at INFO each client's address. Its lines carry
the hour, not the millisecond (docs/decisions.md, "What timing the engines still keep").
Which MongoDB features nx-27017 deviates on, and what the store therefore avoids, is in
DESIGN.md ("Storage").
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from hotline.shared.config import Settings

from .process import EngineError, ManagedProcess, check_ports_free

START_TIMEOUT = 30.0

# `nx-27017`'s console script is `nx_27017.nx_27017:main`; this runs the same function with
# the server's own logger quietened (see the module docstring).
LAUNCHER = (
    "import logging, sys\n"
    "logging.getLogger('nx_27017').setLevel(logging.WARNING)\n"
    # Its log formats set no date format, so these give every line the hour only.
    "logging.Formatter.default_time_format = '%Y-%m-%d %H:00'\n"
    "logging.Formatter.default_msec_format = None\n"
    # It runs every command on asyncio's default thread pool (six threads on two cores), and
    # a command waiting for its database's lock holds one: give it enough that commands on
    # the other databases never wait for a thread (docs/decisions.md, "Batched").
    "import asyncio, concurrent.futures\n"
    "class _Policy(asyncio.DefaultEventLoopPolicy):\n"
    "    def new_event_loop(self):\n"
    "        loop = super().new_event_loop()\n"
    "        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(64))\n"
    "        return loop\n"
    "asyncio.set_event_loop_policy(_Policy())\n"
    "from nx_27017.nx_27017 import main\n"
    "sys.exit(main())\n"
)


def _home(settings: Settings) -> Path:
    return settings.data / "mongo"


def _pid_file(settings: Settings) -> Path:
    return _home(settings) / "nx-27017.pid"


def prepare(settings: Settings) -> None:
    """Check that nx-27017 is installed in this interpreter and runs."""
    if importlib.util.find_spec("nx_27017") is None:
        raise EngineError(
            f"nx-27017 is not installed for {sys.executable}. Install the project "
            "(`pip install -e .`, which pulls nx-27017 from PyPI) and run again."
        )
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 or "--data-dir" not in result.stdout:
        raise EngineError(f"nx-27017 does not run with {sys.executable}:\n{result.stderr[-2000:]}")


def _clear_stale_pid_file(settings: Settings) -> None:
    """nx-27017 refuses to start while its pid file names a live process.

    After a crash the file stays behind and its pid may be reused by an unrelated process;
    only a live nx-27017 counts.
    """
    pid_file = _pid_file(settings)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        cmdline = b""
    alive = True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        alive = False
    except PermissionError:
        pass
    if alive and b"nx_27017" in cmdline:
        raise EngineError(
            f"nx-27017 (pid {pid}) is already running on {_home(settings)}. "
            "Stop it before starting another on the same data directory."
        )
    pid_file.unlink(missing_ok=True)


def _answers_ping(settings: Settings) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        return bool(client.admin.command("ping").get("ok"))
    except PyMongoError:
        return False
    finally:
        client.close()


def start(settings: Settings) -> ManagedProcess:
    """Start nx-27017 on settings.mongo_port and return once it answers `ping`."""
    check_ports_free(settings.host, {"MongoDB (nx-27017)": settings.mongo_port})
    home = _home(settings)
    (home / "db").mkdir(parents=True, exist_ok=True)
    _clear_stale_pid_file(settings)
    command = [
        sys.executable,
        "-c",
        LAUNCHER,
        "--host",
        settings.host,
        "--port",
        str(settings.mongo_port),
        "--data-dir",
        str(home / "db"),
        "--log-file",
        os.devnull,  # the same lines also go to standard error, i.e. <data>/logs/mongo.log
        "--pid-file",
        str(_pid_file(settings)),
        # A rollback journal, not WAL: with SQLite's secure delete, a deleted envelope's
        # bytes leave every file at once; under WAL they stay in the -wal file and in the
        # main file until a checkpoint, which nothing over the wire forces (measured, and
        # the cost of ~3.5x slower writes: docs/retention.md).
        "--journal-mode",
        "TRUNCATE",
    ]
    process = ManagedProcess("mongo", command, settings.logs_dir / "mongo.log", cwd=home)
    process.start()
    try:
        process.wait_until(lambda: _answers_ping(settings), timeout=START_TIMEOUT)
    except BaseException:
        process.stop()
        raise
    return process
