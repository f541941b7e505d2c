"""Running the `hotline` command as a user would: a separate process, its own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# An empty config home, so the login cache of whoever runs the tests is never used.
_NO_LOGIN = tempfile.mkdtemp(prefix="hotline-no-login-")


def hotline(
    *args: str, token: str | None = None, config_home: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `hotline ARGS` with HOTLINE_TOKEN=`token` (none if None) and the login cache of
    `config_home` (XDG_CONFIG_HOME; an empty one if None)."""
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_TOKEN"}
    if token is not None:
        env["HOTLINE_TOKEN"] = token
    env["XDG_CONFIG_HOME"] = str(config_home) if config_home is not None else _NO_LOGIN
    result = subprocess.run(
        [sys.executable, "-m", "hotline.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"hotline {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


def hotline_json(*args: str, token: str | None = None) -> Any:
    return json.loads(hotline(*args, "--json", token=token).stdout)
