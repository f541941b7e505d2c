"""`hotline digests`: a buyer's signed digests, on the buyer's own machine (role buyer).

- `pull` fetches the digests issued since the last one held (a cursor: the last seq, kept
  in the folder's `state.json`), writes each as a digest file `digest-<seq>.json` in the
  folder (default ./digests), and prints the cases they hold, opened with the buyer's key.
  A digest the service serves again must be byte for byte the one held: a different one is
  not written over it, and the pull fails saying so.
- `verify` checks digest files: each signature against notify's digest key (`/vkey`,
  pinned in `state.json` on first use and said so, as `hotline audit verify` pins the log's
  key), the chain (seq 1, 2, 3... with no gap, each naming the previous one's hash), that
  every digest pulled is held, and that each digest's hash is in the public audit log (its
  `digest.issued` entry, subject `<buyer>:<seq>`; also that the log records no later digest
  the folder lacks).
- `open` prints the cases of digest files, `export` the held digests' cases as JSON or CSV,
  `ack` tells the operator the buyer noted a case.

Content is opened here, with the buyer's private keys (`--key`, repeated for the keys held
before a rotation: each envelope is opened with the key it is sealed to). The digest format
and its checks are notify's own pure functions (hotline.notify.digest).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import rfc8785

from hotline.notify.digest import (
    CheckedDigest,
    DigestBody,
    DigestError,
    DigestItem,
    chain_problems,
    check_digest_file,
    read_digest_file,
)
from hotline.shared.config import Settings
from hotline.shared.envelope import EnvelopeError, open_envelope
from hotline.shared.keys import CryptoError, key_id, load_private_key, public_key_of
from hotline.shared.reports import routing_metadata
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.note import Ed25519Verifier, parse_verifier_key

from .session import bearer_token, call

DEFAULT_DIR = Path("digests")
STATE_FILE = "state.json"
PAGE = 200  # digests per request of a pull: the service's maximum

KEYS_OPTION = click.option(
    "--key",
    "key_files",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your private key file (from `hotline keys generate`); repeat it with the keys you "
    "held before a rotation, to open older digests.",
)
DIR_OPTION = click.option(
    "--dir",
    "folder",
    default=DEFAULT_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder of your digest files (where `hotline digests pull` wrote them).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


# --- the folder -----------------------------------------------------------------------------


@dataclass
class Folder:
    """A folder of one buyer's digest files and its state: the buyer, the last seq pulled,
    and notify's digest key once pinned."""

    path: Path
    buyer: str | None = None
    seq: int = 0
    vkey: str | None = None

    @classmethod
    def load(cls, path: Path) -> Folder:
        state_path = path / STATE_FILE
        if not state_path.exists():
            return cls(path)
        try:
            state = json.loads(state_path.read_text())
            folder = cls(path, state["buyer"], state["seq"], state["vkey"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"{state_path} is not a digests state file: {exc}") from None
        if not (
            isinstance(folder.seq, int)
            and all(isinstance(v, str | None) for v in (folder.buyer, folder.vkey))
        ):
            raise click.ClickException(f"{state_path} is not a digests state file")
        return folder

    def save(self) -> None:
        """Replace the state file atomically (a crash leaves the old or the new one)."""
        self.path.mkdir(parents=True, exist_ok=True)
        state = {"buyer": self.buyer, "seq": self.seq, "vkey": self.vkey}
        temporary = self.path / f".{STATE_FILE}.tmp"
        temporary.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(temporary, self.path / STATE_FILE)

    def file_of(self, seq: int) -> Path:
        return self.path / f"digest-{seq:08d}.json"

    def files(self) -> list[Path]:
        return sorted(self.path.glob("digest-*.json"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None


def read_body(path: Path) -> DigestBody:
    """The body of digest file `path` (its format checked, not its signature)."""
    try:
        return read_digest_file(read_json(path))[2]
    except DigestError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


def write_digest(folder: Folder, document: dict[str, Any]) -> tuple[Path, bool]:
    """Write a digest file as served; (path, False) when the same one is held already.
    Refuses to replace a held digest with a different one."""
    body = read_digest_file(document)[2]
    path = folder.file_of(body.seq)
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    if path.exists():
        held = read_json(path)
        if rfc8785.dumps(held) == rfc8785.dumps(document):
            return path, False
        raise click.ClickException(
            f"notify served a digest {body.seq} that differs from the one held in {path} "
            "(kept as it was): run `hotline digests verify --all`"
        )
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path, True


# --- opening ----------------------------------------------------------------------------------


def private_keys(paths: Iterable[Path]) -> dict[str, bytes]:
    """key id -> private key of every --key file."""
    keys = {}
    for path in paths:
        try:
            private = load_private_key(path)
        except CryptoError as exc:
            raise click.ClickException(str(exc)) from None
        keys[key_id(public_key_of(private))] = private
    return keys


def open_item(item: DigestItem, keys: dict[str, bytes]) -> str:
    """The text of a new item's content; EnvelopeError if none of `keys` opens it."""
    assert item.content is not None
    recipients = item.content.get("recipients")
    sealed_to = set(recipients) if isinstance(recipients, dict) else set()
    usable = [keys[kid] for kid in sorted(sealed_to & keys.keys())]
    if not usable:
        raise EnvelopeError("sealed to none of the --key files (a key you held before a rotation?)")
    routing = routing_metadata(item.factory, item.categories, item.urgent, item.language)
    plaintext = open_envelope(
        item.content, private_key=usable[0], case_id=item.case_id, routing=routing
    )
    return plaintext.decode(errors="replace")


def case_of(body: DigestBody, item: DigestItem, text: str | None) -> dict[str, Any]:
    """A digest item as shown and exported: its metadata, and the opened text if any."""
    return {
        "digest": body.seq,
        "issued": body.issued,
        "reason": body.reason,
        "case_id": item.case_id,
        "change": item.change,
        "factory": item.factory,
        "categories": item.categories,
        "urgent": item.urgent,
        "language": item.language,
        "received": item.received,
        "severity": item.severity,
        "status": item.status,
        "due": item.due,
        "attachments": len(item.attachments),
        "content": text,
    }


def opened_cases(
    bodies: Sequence[DigestBody], keys: dict[str, bytes]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every item of `bodies` with its content opened; and what could not be opened."""
    cases, failures = [], []
    for body in bodies:
        for item in body.items:
            text = None
            if item.content is not None:
                try:
                    text = open_item(item, keys)
                except EnvelopeError as exc:
                    failures.append(f"case {item.case_id}: cannot open it: {exc}")
                    continue
            cases.append(case_of(body, item, text))
    return cases, failures


def show_cases(cases: list[dict[str, Any]], failures: list[str], as_json: bool, keys: str) -> None:
    """Print the cases (text or JSON); the failures on stderr, then exit 1 if any."""
    for failure in failures:
        click.echo(failure, err=True)
    if as_json:
        click.echo(json.dumps(cases, ensure_ascii=False, indent=2))
    else:
        for case in cases:
            flags = " URGENT" if case["urgent"] else ""
            state = f"{case['severity'] or 'unrated'}, {case['status']}"
            if case["due"]:
                state += f", due {case['due']}"
            click.echo(
                f"— {case['case_id']}  {case['factory']}  {','.join(case['categories'])}{flags}"
                f"  [{case['change']}: {state}]  (digest {case['digest']})"
            )
            if case["content"] is not None:
                click.echo(f"  {case['content']}")
    if failures:
        total = len(cases) + len(failures)
        raise click.ClickException(
            f"{len(failures)} of {total} cases could not be opened with {keys} "
            "(is it the private key registered for your organisation?)"
        )


# --- commands ---------------------------------------------------------------------------------


@click.command("pull")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    help="Pull the digests after this seq (default: after the last one held).",
)
@KEYS_OPTION
@click.option(
    "--out",
    "folder_path",
    default=DEFAULT_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to keep the digest files in (created if missing).",
)
@click.option(
    "--now",
    is_flag=True,
    help="First ask notify to issue a digest of what is pending now, rather than wait for "
    "your schedule (critical cases are issued at once anyway).",
)
@JSON_OPTION
def digests_pull(
    since: int | None, key_files: tuple[Path, ...], folder_path: Path, now: bool, as_json: bool
) -> None:
    """Fetch your organisation's new digests, keep them, and show their cases, decrypted on
    this machine.

    Only what was issued after the last digest held is fetched. Digests are issued on your
    organisation's schedule (daily or weekly) and at once for critical cases; --now asks for
    one of what is pending first. A case that cannot be opened
    (not sealed to these keys, damaged) is reported on stderr with its id and the reason,
    the others are still shown, and the exit status is then 1. Check the digests with
    `hotline digests verify --all`.
    """
    keys = private_keys(key_files)
    s = Settings()
    auth = bearer_token(s)
    folder = Folder.load(folder_path)
    folder.path.mkdir(parents=True, exist_ok=True)
    cursor = folder.seq if since is None else since
    if now:  # 201 with the digest issued, or 204: nothing pending; the pull below fetches it
        call("POST", f"{s.notify_url}/api/digests/issue", auth=auth)
    pulled: list[DigestBody] = []
    while True:
        page = call(
            "GET", f"{s.notify_url}/api/digests", auth=auth, params={"since": cursor, "limit": PAGE}
        )
        try:
            documents, cursor, more = list(page["digests"]), int(page["next"]), bool(page["more"])
        except (KeyError, TypeError, ValueError):
            raise click.ClickException("notify's answer is not a page of digests") from None
        for document in documents:
            try:
                body = read_digest_file(document)[2]
            except DigestError as exc:
                raise click.ClickException(
                    f"notify served something that is not a digest: {exc}"
                ) from None
            if folder.buyer is not None and body.buyer != folder.buyer:
                raise click.ClickException(
                    f"{folder.path} holds {folder.buyer}'s digests, not {body.buyer}'s: pull "
                    "into another folder (--out)"
                )
            folder.buyer = body.buyer
            _, written = write_digest(folder, document)
            if written or since is not None:
                pulled.append(body)
        folder.seq = max(folder.seq, cursor)
        folder.save()  # an interrupted pull goes on from here
        if not more:
            break
    if not pulled:
        if not as_json:
            click.echo(f"no new digests ({len(folder.files())} held in {folder.path})")
        else:
            click.echo("[]")
        return
    click.echo(f"{len(pulled)} digests pulled into {folder.path}", err=True)
    cases, failures = opened_cases(pulled, keys)
    show_cases(cases, failures, as_json, ", ".join(map(str, key_files)))


@click.command("open")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@KEYS_OPTION
@JSON_OPTION
def digests_open(files: tuple[Path, ...], key_files: tuple[Path, ...], as_json: bool) -> None:
    """Show the cases of digest FILES, decrypted on this machine (nothing is fetched; check
    the files with `hotline digests verify`)."""
    keys = private_keys(key_files)
    bodies = sorted((read_body(path) for path in files), key=lambda body: body.seq)
    cases, failures = opened_cases(bodies, keys)
    show_cases(cases, failures, as_json, ", ".join(map(str, key_files)))


EXPORT_FIELDS = (
    "digest",
    "issued",
    "reason",
    "case_id",
    "change",
    "factory",
    "categories",
    "urgent",
    "language",
    "received",
    "severity",
    "status",
    "due",
    "attachments",
    "content",
)


@click.command("export")
@click.option("--format", "form", type=click.Choice(["json", "csv"]), required=True)
@DIR_OPTION
@click.option(
    "--key",
    "key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also decrypt each new case's text with this private key (repeatable). Without it "
    "the export holds the cases' metadata only.",
)
def digests_export(form: str, folder: Path, key_files: tuple[Path, ...]) -> None:
    """Print every case of the digests held in the folder, one row per digest item, as JSON
    or CSV (redirect it to a file). The text of the reports is included only with --key:
    an export with it is plaintext, keep it as carefully as the key."""
    held = Folder.load(folder).files()
    if not held:
        raise click.ClickException(f"no digest files in {folder}: `hotline digests pull` first")
    bodies = sorted((read_body(path) for path in held), key=lambda body: body.seq)
    if key_files:
        cases, failures = opened_cases(bodies, private_keys(key_files))
        for failure in failures:
            click.echo(failure, err=True)
    else:
        cases = [case_of(body, item, None) for body in bodies for item in body.items]
        failures = []
    if form == "json":
        click.echo(json.dumps(cases, ensure_ascii=False, indent=2))
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for case in cases:
            writer.writerow({**case, "categories": ";".join(case["categories"])})
        click.echo(out.getvalue(), nl=False)
    if failures:
        sys.exit(1)


@click.command("ack")
@click.argument("case_id")
@JSON_OPTION
def digests_ack(case_id: str, as_json: bool) -> None:
    """Tell the operator your organisation noted CASE_ID (a case of your digests).

    The operator sees it in the case's conversation; it carries no text. Noting a case
    twice changes nothing."""
    s = Settings()
    posted = call(
        "POST", f"{s.notify_url}/api/cases/{quote(case_id, safe='')}/ack", auth=bearer_token(s)
    )
    if as_json:
        click.echo(json.dumps({"case_id": case_id, "message_id": posted["message_id"]}))
    else:
        click.echo(f"noted: the operator sees that you read case {case_id}")


# --- verify -----------------------------------------------------------------------------------


def _verifier(text: str, source: str) -> Ed25519Verifier:
    try:
        key = parse_verifier_key(text.strip())
    except TlogError as exc:
        raise click.ClickException(f"{source}: not a digest key: {exc}") from None
    if not isinstance(key, Ed25519Verifier):
        raise click.ClickException(f"{source}: the digest key is an Ed25519 (type 0x01) key")
    return key


def digest_key(folder: Folder, given: str | None, notify_url: str) -> Ed25519Verifier:
    """--vkey, else the key pinned in the folder, else notify's /vkey (trust on first use,
    said on stderr; `verify` pins it once the digests verify)."""
    if given is not None:
        try:
            text = Path(given).read_text().strip() if Path(given).is_file() else given
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"cannot read {given}: {exc}") from None
        key = _verifier(text.splitlines()[0] if text else text, "--vkey")
        if folder.vkey is not None and folder.vkey != key.vkey():
            raise click.ClickException(
                f"{folder.path / STATE_FILE} pinned another digest key ({folder.vkey}); if "
                "notify's key really changed, verify from a new folder"
            )
        return key
    if folder.vkey is not None:
        return _verifier(folder.vkey, str(folder.path / STATE_FILE))
    from .audit import LogClient  # here: the log's reader is loaded only by commands that read it

    client = LogClient(notify_url)
    try:
        served = client.get("vkey")
    finally:
        client.close()
    if served is None:
        raise click.ClickException(f"{notify_url} serves no /vkey: give the key with --vkey")
    key = _verifier(served.decode("utf-8", errors="replace"), f"{notify_url}/vkey")
    click.echo(
        f"Digest key fetched from {notify_url}/vkey: {key.vkey()}\n"
        "A key fetched from the service it checks proves nothing against that service: compare "
        "it with the key the hotline publishes elsewhere. Once the digests verify, it is pinned "
        f"in {folder.path / STATE_FILE} (trust on first use): later runs check against it.",
        err=True,
    )
    return key


def audit_problems(audit_url: str, digests: Sequence[CheckedDigest]) -> list[str]:
    """What the public audit log does not confirm: a digest without its `digest.issued`
    entry (same buyer, seq, hash, previous hash and cases), or a later digest it records
    that is not among `digests`."""
    if not digests:
        return []
    from .audit import LogClient  # as above

    client = LogClient(audit_url)
    ordered = sorted(digests, key=lambda d: d.seq)
    paths = [_entries_path(d.buyer, d.seq) for d in ordered]
    after = ordered[-1].seq + 1
    paths.append(_entries_path(ordered[-1].buyer, after))
    problems = []
    try:
        answers = list(client.fetch_many(paths))
    finally:
        client.close()
    for digest, answer in zip(ordered, answers, strict=False):
        if not any(_confirms(entry, digest) for entry in _digest_entries(answer)):
            problems.append(
                f"digest {digest.seq} is not in the audit log (no digest.issued entry with its "
                "hash; if it was issued seconds ago, try again)"
            )
    if _digest_entries(answers[-1]):
        problems.append(
            f"the audit log records digest {after} of {ordered[-1].buyer}, which is not held "
            "here: pull it"
        )
    return problems


def _entries_path(buyer: str, seq: int) -> str:
    return f"api/entries?case={quote(f'{buyer}:{seq}', safe='')}&limit=10"


def _digest_entries(answer: bytes | None) -> list[dict[str, Any]]:
    """The digest.issued entries of an /api/entries answer whose leaf hash is their own."""
    try:
        listed = json.loads(answer or b"[]")
    except ValueError:
        return []
    entries = []
    for row in listed if isinstance(listed, list) else []:
        try:
            entry, hashed = row["entry"], row["leaf_hash"]
            if entry["type"] == "digest.issued" and leaf_hash(rfc8785.dumps(entry)).hex() == hashed:
                entries.append(entry)
        except (KeyError, TypeError, rfc8785.CanonicalizationError):
            continue
    return entries


def _confirms(entry: dict[str, Any], digest: CheckedDigest) -> bool:
    cases = [item.case_id for item in digest.body.items]
    return (
        entry.get("buyer") == digest.buyer
        and entry.get("seq") == digest.seq
        and entry.get("digest_hash") == digest.hash
        and entry.get("previous") == digest.body.previous
        and entry.get("cases") == cases
    )


@click.command("verify")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--all", "every", is_flag=True, help="Verify every digest file in the folder.")
@DIR_OPTION
@click.option(
    "--vkey",
    help="Notify's digest key, or a file holding it (default: the key pinned in the folder, "
    "else notify's own /vkey, trusted on first use and said so).",
)
@JSON_OPTION
def digests_verify(
    files: tuple[Path, ...], every: bool, folder: Path, vkey: str | None, as_json: bool
) -> None:
    """Verify digest FILES (or --all in the folder): signatures, the chain, and the audit log.

    Each signature must be notify's digest key's over exactly that digest; the digests must
    follow each other (seq 1, 2, 3... with no gap, each naming the previous one's hash), the
    folder must hold every digest pulled, and the public audit log must record each one's
    hash. Exit status 0 when all of it holds, 1 otherwise.
    """
    if bool(files) == every:
        raise click.UsageError("give digest FILES, or --all for every file in the folder")
    s = Settings()
    held = Folder.load(folder)
    paths = list(files) or held.files()
    if not paths:
        raise click.ClickException(f"no digest files in {folder}: `hotline digests pull` first")
    key = digest_key(held, vkey, s.notify_url)
    checked: list[CheckedDigest] = []
    problems: list[str] = []
    for path in paths:
        try:
            checked.append(check_digest_file(read_json(path), key))
        except DigestError as exc:
            problems.append(f"{path.name}: {exc}")
    problems += chain_problems(checked)
    if every and checked:
        last = max(d.seq for d in checked)
        if held.seq > last:
            problems.append(f"{_span(last + 1, held.seq)} pulled, but not in {folder}")
        first = min(d.seq for d in checked)
        if first != 1:
            problems.append(f"{_span(1, first - 1)} not in {folder}")
    problems += audit_problems(s.audit_url, checked)
    seqs = sorted(d.seq for d in checked)
    summary = {
        "ok": not problems,
        "buyer": checked[0].buyer if checked else None,
        "digests": len(checked),
        "first": seqs[0] if seqs else None,
        "last": seqs[-1] if seqs else None,
        "problems": problems,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    elif problems:
        for problem in problems:
            click.echo(f"  FAIL {problem}")
        click.echo(f"VERIFY FAILED: {len(problems)} problem(s) in {len(paths)} digest file(s)")
    else:
        click.echo(
            f"VERIFIED: {len(checked)} digests of {summary['buyer']} (seq {seqs[0]} to "
            f"{seqs[-1]}): signatures by {key.name}, the chain, and each in the audit log"
        )
    if problems:
        sys.exit(1)
    if held.vkey is None and held.path.is_dir():
        held.vkey = key.vkey()  # pinned once it verified digests (trust on first use)
        held.save()


def _span(first: int, last: int) -> str:
    return f"digest {first} was" if first == last else f"digests {first} to {last} were"


BUYER_DIGEST_COMMANDS = (digests_pull, digests_verify, digests_open, digests_export, digests_ack)
