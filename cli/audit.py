"""`hotline audit`: the auditor's tools, run on the compliance officer's own machine.

They read the log's public API only (C2SP tlog-tiles: `/checkpoint`, `/tile/...`), with no
token and no cookie, and compute everything locally: the checks live in
`hotline.shared.audit` (pure); this module fetches, keeps the state file, shows progress and
prints. No command sends a case id anywhere: `prove` downloads the whole log and picks the
case's entries itself.

Exit status: 0 when everything verified, 1 when a check failed (or the log is unreachable).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from hotline.shared.audit.failures import AuditFailure
from hotline.shared.audit.proofs import build_case_proof, case_entries, check_case_proof
from hotline.shared.audit.verdict import Verdict, audit_log
from hotline.shared.audit.walk import walk_log
from hotline.shared.config import Settings
from hotline.shared.tlog.checkpoint import Checkpoint, parse_checkpoint
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.note import (
    CosignatureVerifier,
    Cosigner,
    Ed25519Verifier,
    format_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
)

from .http import tls
from .session import call

FETCH_THREADS = 4
LOOKAHEAD = 32  # requests in flight ahead of the checks: enough to keep both cores busy


@click.group()
def audit() -> None:
    """The public audit log: read it, verify it, prove a case's events are in it."""


@audit.command("entries")
@click.option("--case", "case_id", help="Only the entries of this case.")
@click.option("--start", default=0, show_default=True, help="First index.")
@click.option("--limit", default=100, show_default=True, help="At most this many.")
def audit_entries(case_id: str | None, start: int, limit: int) -> None:
    """Print log entries (hashes and metadata only) as JSON lines."""
    s = Settings()
    params: dict[str, Any] = {"start": start, "limit": limit}
    if case_id:
        params["case"] = case_id
    for entry in call("GET", f"{s.audit_url}/api/entries", params=params):
        click.echo(json.dumps(entry, ensure_ascii=False))


# --- fetching the public log ---------------------------------------------------------------


class LogClient:
    """GETs a log's static resources; no credentials, no cookies are ever sent."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=30, follow_redirects=False, verify=tls()
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> bytes | None:
        """The resource at `path` (relative to the log), or None when it is not served."""
        try:
            response = self._http.get(f"/{path}")
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach the log at {self.url}: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise click.ClickException(f"GET {self.url}/{path}: HTTP {response.status_code}")
        return response.content

    def fetch_many(self, paths: Sequence[str]) -> Iterator[bytes | None]:
        """Contents of `paths` in order, fetched a few at a time ahead of the caller."""
        pool = ThreadPoolExecutor(max_workers=FETCH_THREADS)
        pending: deque[Future[bytes | None]] = deque()
        try:
            for path in paths:
                pending.append(pool.submit(self.get, path))
                if len(pending) >= LOOKAHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def checkpoint(self) -> bytes:
        note = self.get("checkpoint")
        if note is None:
            raise click.ClickException(f"{self.url} serves no checkpoint")
        return note


def _unverified_checkpoint(note: bytes) -> Checkpoint | None:
    """The checkpoint body WITHOUT checking signatures (for sizing a progress bar)."""
    try:
        return parse_checkpoint(parse_note(note)[0])
    except TlogError:
        return None


# --- keys -----------------------------------------------------------------------------------


def _key_text(value: str) -> str:
    """A vkey given inline, or the first line of the file it names."""
    path = Path(value)
    if "+" not in value or path.is_file():
        try:
            return path.read_text().strip().splitlines()[0]
        except (OSError, IndexError):
            raise click.BadParameter(f"{value} is neither a verifier key nor a file") from None
    return value.strip()


def _log_key(value: str) -> Ed25519Verifier:
    try:
        key = parse_verifier_key(_key_text(value))
    except TlogError as exc:
        raise click.BadParameter(f"log key: {exc}") from None
    if not isinstance(key, Ed25519Verifier):
        raise click.BadParameter("the log key must be an Ed25519 (type 0x01) verifier key")
    return key


def _witness_key(value: str) -> CosignatureVerifier:
    try:
        key = parse_verifier_key(_key_text(value))
    except TlogError as exc:
        raise click.BadParameter(f"witness key: {exc}") from None
    return CosignatureVerifier.from_ed25519(key) if isinstance(key, Ed25519Verifier) else key


def _read_secret(path: Path) -> str:
    """A witness key file's first line, checked for its kind first, then refused when others
    may read it (as OpenSSH does)."""
    try:
        text = path.read_text().strip()
        readable_by_others = path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    if not text.startswith("PRIVATE+KEY+"):
        raise click.ClickException(
            f"{path} is not a witness private key (from `hotline audit witness-key generate`; "
            "its .pub file is the verifier key, not the key to cosign with)"
        )
    if readable_by_others:
        raise click.ClickException(f"{path} is readable by others: chmod 600 {path}")
    return text


def _cosigner(path: Path) -> Cosigner:
    try:
        key = parse_signer_key(_read_secret(path))
    except TlogError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    if not isinstance(key, Cosigner):
        raise click.ClickException(f"{path} is not a witness (cosignature/v1) key")
    return key


@audit.group("witness-key")
def witness_key() -> None:
    """Witness keys: a compliance officer cosigns the checkpoints they verified."""


@witness_key.command("generate")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Key name, e.g. auditor.example.org.")
def witness_key_generate(out: Path, name: str) -> None:
    """Create a cosigner key in FILE (0600) and its verifier key in FILE.pub; print the
    verifier key (give it to the log's operator for HOTLINE_AUDIT_WITNESSES)."""
    try:
        key = Cosigner.generate(name)
    except TlogError as exc:
        raise click.BadParameter(str(exc)) from None
    vkey = key.verifier().vkey()
    public = out.with_name(out.name + ".pub")
    for path, text, mode in ((out, key.skey(), 0o600), (public, vkey, 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise click.ClickException(f"refusing to overwrite {path}") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
    click.echo(vkey)


# --- verify -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditorState:
    """What `verify --state FILE` keeps: the log key pinned on first use and the checkpoint
    trusted last. `vkey` is None in state files written before keys were pinned."""

    origin: str
    vkey: str | None
    checkpoint: str


def _load_state(path: Path | None) -> AuditorState | None:
    """The state in `path` (None on first use: no file yet)."""
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        found = AuditorState(state["origin"], state.get("vkey"), state["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        found = None
    if found is None or not all(
        isinstance(v, str) for v in (found.origin, found.checkpoint, found.vkey or "")
    ):
        raise click.ClickException(f"{path} is not a state file of `hotline audit verify`")
    return found


def _save_state(path: Path, log_key: Ed25519Verifier, note: str) -> None:
    """Replace the state file atomically (a crash leaves the old or the new one)."""
    state = {"origin": log_key.name, "vkey": log_key.vkey(), "checkpoint": note}
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(temporary, path)


def _fetch_log_key(client: LogClient) -> Ed25519Verifier:
    """The key the log serves at /vkey; it proves nothing against that log on its own."""
    served = client.get("vkey")
    if served is None:
        raise click.ClickException(f"{client.url} serves no /vkey: give the log's key with --vkey")
    try:
        return _log_key(served.decode("utf-8", errors="replace").strip())
    except click.BadParameter as exc:
        raise click.ClickException(f"{client.url}/vkey: {exc.message}") from None


def _trusted_log_key(
    client: LogClient, vkey: str | None, state: AuditorState | None, state_path: Path | None
) -> Ed25519Verifier:
    """The key to check the log against: --vkey, else the one pinned in the state file, else
    the log's own /vkey on first use (trust on first use, said on stderr)."""
    pinned = state.vkey if state is not None else None
    if vkey is not None:
        given = _log_key(vkey)
        if pinned is not None and given.vkey() != pinned:
            raise click.ClickException(
                f"{state_path} pinned another key for this log ({pinned}); if the log's key "
                "really changed, verify with a new --state file"
            )
        return given
    if pinned is not None:
        return _log_key(pinned)
    fetched = _fetch_log_key(client)
    pinning = (
        f"It is now pinned in {state_path} (trust on first use): later runs check the log "
        "against it, not against what the log serves."
        if state_path is not None
        else "Pass --state FILE to pin it (trust on first use), or --vkey KEY to give the key "
        "you trust."
    )
    click.echo(
        f"Log key fetched from {client.url}/vkey: {fetched.vkey()}\n"
        "A key fetched from the log it verifies proves nothing against that log: compare it "
        f"with the key the log's operator publishes elsewhere. {pinning}",
        err=True,
    )
    return fetched


LOG_OPTION = click.option(
    "--log",
    "log_url",
    help="The log's URL (default: $HOTLINE_AUDIT_URL, else this system's audit-log port).",
)


@audit.command("vkey")
@LOG_OPTION
def audit_vkey(log_url: str | None) -> None:
    """Print the verifier key the log serves (C2SP signed-note vkey).

    Fetched from the log itself, it proves nothing against that log: compare it with the
    key the log's operator publishes elsewhere before you rely on it. `audit verify --state
    FILE` pins the key on first use.
    """
    client = LogClient(log_url or Settings().audit_url)
    try:
        key = _fetch_log_key(client)
    finally:
        client.close()
    click.echo(key.vkey())
    click.echo(
        "(fetched from the log itself: compare it with the key its operator publishes)", err=True
    )


@audit.command("verify")
@LOG_OPTION
@click.option(
    "--vkey",
    help="The log's verifier key, or a file holding it (default: the key pinned in --state, "
    "else the log's own /vkey, trusted on first use and said so).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File keeping the log key and the checkpoint you trusted last (created on first use).",
)
@click.option("--witness", "witnesses", multiple=True, help="A witness verifier key (repeat).")
@click.option("--quorum", type=int, help="Cosignatures required (default: every --witness).")
@click.option(
    "--cosign",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="After a successful verification, cosign the checkpoint with this witness key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def audit_verify(
    log_url: str | None,
    vkey: str | None,
    state: Path | None,
    witnesses: tuple[str, ...],
    quorum: int | None,
    cosign: Path | None,
    as_json: bool,
) -> None:
    """Verify the whole log: signature, history, every entry and tile, and the policy.

    With --state FILE, the log's key and the checkpoint verified are kept in FILE, and the
    next run also proves the log only grew since (consistency).
    """
    witness_keys = [_witness_key(w) for w in witnesses]
    required = len(witness_keys) if quorum is None else quorum
    if not 0 <= required <= len(witness_keys):
        raise click.BadParameter(f"--quorum {required} needs as many --witness keys")
    cosigner = _cosigner(cosign) if cosign is not None else None
    trusted = _load_state(state)
    client = LogClient(log_url or Settings().audit_url)
    try:
        log_key = _trusted_log_key(client, vkey, trusted, state)
        if trusted is not None and trusted.origin != log_key.name:
            raise click.ClickException(f"{state} is the state of log {trusted.origin!r}")
        note = client.checkpoint()
        verdict, checkpoint = _run_audit(
            client, note, log_key, trusted.checkpoint if trusted else None, witness_keys, required
        )
        _print_verdict(verdict, as_json)
        if not verdict.ok or checkpoint is None:
            sys.exit(1)
        if state is not None:
            _save_state(state, log_key, note.decode())
        if cosigner is not None:
            _post_cosignature(client, note.decode(), cosigner, checkpoint)
    finally:
        client.close()


def _run_audit(
    client: LogClient,
    note: bytes,
    log_key: Ed25519Verifier,
    trusted: str | None,
    witnesses: list[CosignatureVerifier],
    quorum: int,
) -> tuple[Verdict, Checkpoint | None]:
    shown = _unverified_checkpoint(note)
    with click.progressbar(
        length=shown.size if shown else 0, label="entries", file=sys.stderr
    ) as bar:
        return audit_log(
            note=note,
            log_key=log_key,
            fetch_many=client.fetch_many,
            trusted_note=trusted,
            witnesses=witnesses,
            quorum=quorum,
            progress=bar.update,
        )


def _print_verdict(verdict: Verdict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=1))
    else:
        for line in verdict.summary():
            click.echo(line)


def _post_cosignature(
    client: LogClient, note: str, cosigner: Cosigner, checkpoint: Checkpoint
) -> None:
    """Cosign the verified checkpoint (C2SP tlog-cosignature) and give it to the log."""
    text = parse_note(note)[0]
    body = format_note(text, [cosigner.cosign(text, int(time.time()))])
    try:
        response = httpx.post(
            f"{client.url}/cosignature",
            content=body.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=30,
            verify=tls(),
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot post the cosignature: {exc}") from None
    if response.status_code != 200:
        detail = response.json().get("detail", response.text) if response.content else ""
        raise click.ClickException(
            f"the log refused the cosignature ({response.status_code}): {detail}"
        )
    click.echo(f"cosigned checkpoint of size {checkpoint.size} as {cosigner.name}", err=True)


# --- prove / check-proof --------------------------------------------------------------------


@audit.command("prove")
@click.option("--case", "case_id", required=True, help="The case whose events to prove.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The proof file to write.",
)
@LOG_OPTION
def audit_prove(case_id: str, out: Path, log_url: str | None) -> None:
    """Write a self-contained proof that every event of a case is in the log.

    The whole log is downloaded and the proofs are computed here, from tiles: the log never
    learns which case you looked at. Check the file with `hotline audit check-proof`.
    """
    client = LogClient(log_url or Settings().audit_url)
    try:
        note = client.checkpoint()
        checkpoint = _unverified_checkpoint(note)
        if checkpoint is None:
            raise click.ClickException("the log's checkpoint is malformed")
        found, on_bundle = case_entries(case_id)
        with click.progressbar(length=checkpoint.size, label="entries", file=sys.stderr) as bar:
            try:
                result = walk_log(checkpoint.size, client.fetch_many, on_bundle, bar.update)
            except AuditFailure as failure:
                raise click.ClickException(f"the log is inconsistent: {failure}") from None
    finally:
        client.close()
    if result.root != checkpoint.root_hash:
        raise click.ClickException("the log's entries do not hash to its checkpoint's root")
    if not found:
        raise click.ClickException(f"no entry of case {case_id} in the log")
    proof = build_case_proof(case_id, note.decode(), checkpoint, found, result.tiles)
    out.write_text(json.dumps(proof, indent=1) + "\n")
    click.echo(
        f"{len(found)} entries of case {case_id} proven against the checkpoint of size "
        f"{checkpoint.size}: {out}"
    )


@audit.command("check-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--vkey", help="The log's verifier key, or a file holding it.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Or: the state file of `hotline audit verify`, whose pinned log key to use.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_check_proof(
    proof_file: Path, vkey: str | None, state: Path | None, as_json: bool
) -> None:
    """Verify a proof file offline: the checkpoint's signature and every inclusion proof.

    Nothing is fetched: the log's key comes from --vkey or from the --state file of
    `hotline audit verify`.
    """
    if vkey is not None and state is not None:
        raise click.UsageError("give the log's key by --vkey or by --state, not both")
    if vkey is None:
        pinned = _load_state(state)
        if pinned is None or pinned.vkey is None:
            raise click.UsageError(
                "give the log's key: --vkey KEY (from the log's operator, or `hotline audit "
                "vkey`), or --state FILE of a `hotline audit verify --state FILE` run"
            )
        vkey = pinned.vkey
    log_key = _log_key(vkey)
    try:
        document = json.loads(proof_file.read_text())
        proof = check_case_proof(document, log_key)
    except ValueError:
        raise click.ClickException(f"{proof_file} is not JSON") from None
    except AuditFailure as failure:
        if as_json:
            click.echo(json.dumps({"ok": False, "failure": failure.to_json()}))
        else:
            click.echo(f"PROOF FAILED: {failure}")
        sys.exit(1)
    entries = [{"index": i, "type": str(e.type), "time": e.time} for i, e in proof.entries]
    if as_json:
        click.echo(
            json.dumps(
                {"ok": True, "case": proof.case, "size": proof.checkpoint.size, "entries": entries}
            )
        )
        return
    click.echo(
        f"PROOF OK: {len(entries)} entries of case {proof.case} are in log "
        f"{proof.checkpoint.origin} at size {proof.checkpoint.size}"
    )
    for entry in entries:
        click.echo(f"  entry {entry['index']}: {entry['type']} ({entry['time']})")
