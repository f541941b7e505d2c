"""A machine without Java or Maven, as a process environment: the same tools on PATH, less those;
and a Maven repository of the test's own, for the Maven Wrapper to fetch Maven from."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hotline.cli.engines import process

JAVA = frozenset({"java", "javac"})
MAVEN = frozenset({"mvn", "mvnDebug"})
# wget cannot read a file:// URL, and the Maven Wrapper prefers it to curl, which can.
WGET = frozenset({"wget"})


def path_without(tools: frozenset[str], into: Path) -> str:
    """A PATH of one folder, `into`, holding a link to every command of today's PATH except
    `tools` (the folders themselves also hold what is removed, so they cannot stay)."""
    into.mkdir(parents=True, exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir():
            continue
        for command in Path(folder).iterdir():
            link = into / command.name
            if command.name in tools or link.exists() or link.is_symlink():
                continue
            if command.is_file() and os.access(command, os.X_OK):
                link.symlink_to(command)
    return str(into)


def machine_without(tools: frozenset[str], env: dict[str, str], scratch: Path) -> dict[str, str]:
    """`env` as on a machine that lacks `tools` (e.g. `JAVA | MAVEN`): PATH without them, and
    no JAVA_HOME, M2_HOME or MAVEN_HOME pointing at them."""
    stripped = {k: v for k, v in env.items() if k not in ("JAVA_HOME", "M2_HOME", "MAVEN_HOME")}
    stripped["PATH"] = path_without(tools, scratch / "bin")
    return stripped


def wrapper_distribution_path() -> str:
    """Where in a Maven repository the packaged Maven Wrapper looks for its Maven: the
    distributionUrl of its properties, which is a path in the repository, with no host."""
    properties = process.MAVEN_WRAPPER.joinpath(*process.MAVEN_WRAPPER_FILES[1]).read_text()
    found = re.search(r"^distributionUrl=/(\S+-bin\.zip)$", properties, re.MULTILINE)
    assert found is not None, properties
    return found.group(1)


def local_maven_repository(into: Path) -> str | None:
    """A Maven repository in `into` holding one artifact: this machine's own Maven, laid out
    and named as the binary distribution the wrapper asks for (zip, and tar.gz for a machine
    without unzip). Its base URL (file://) for MVNW_REPOURL; None if the machine has no Maven."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return None
    home = Path(mvn).resolve().parent.parent  # Debian: /usr/bin/mvn -> /usr/share/maven/bin/mvn
    archive = into / wrapper_distribution_path()  # .../<v>/apache-maven-<v>-bin.zip
    top = archive.name.removesuffix("-bin.zip")  # apache-maven-<v>, the folder the zip holds
    staging = into / "staging"
    # Links followed: Debian's lib/ and conf/ are links into /usr/share/java and /etc/maven.
    shutil.copytree(home, staging / top, symlinks=False)
    archive.parent.mkdir(parents=True)
    base = str(archive.parent / archive.name.removesuffix(".zip"))
    for kind, suffix in (("zip", ".zip"), ("gztar", ".tar.gz")):
        made = shutil.make_archive(base, kind, root_dir=staging, base_dir=top)
        assert made == base + suffix, made
    shutil.rmtree(staging)
    return into.resolve().as_uri()
