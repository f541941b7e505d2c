"""The form's vendored crypto library is exactly the pinned one, and the form loads nothing
from another origin (services/intake/static/vendor/README.md)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
STATIC = ROOT / "services" / "intake" / "static"
VENDOR = STATIC / "vendor"
JS = ROOT / "services" / "intake" / "js"
PINNED = "libsodium-wrappers-sumo"
# XML namespace names (an SVG's xmlns) are identifiers that nothing fetches.
REMOTE_URL = re.compile(r"(?:https?:)?//(?!www\.w3\.org/)[A-Za-z0-9.-]+\.[A-Za-z]{2,}[/:]")


def sums() -> dict[str, str]:
    lines = (VENDOR / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def test_every_vendored_file_matches_its_checksum() -> None:
    listed = sums()
    on_disk = {path.name for path in VENDOR.iterdir()} - {"SHA256SUMS", "README.md"}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_library_is_pinned_exactly_with_integrity_hashes() -> None:
    version = json.loads((JS / "package.json").read_text())["dependencies"][PINNED]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{PINNED} must be pinned exactly"
    packages = json.loads((JS / "package-lock.json").read_text())["packages"]
    assert packages[f"node_modules/{PINNED}"]["version"] == version
    installed = {path: entry for path, entry in packages.items() if path}
    assert installed, "the lockfile lists no package"
    for path, entry in installed.items():
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", entry["integrity"]), path


def test_the_wrapper_imports_the_vendored_core_relatively() -> None:
    wrapper = (VENDOR / "libsodium-wrappers-sumo.js").read_text(encoding="utf-8")
    imports = re.findall(r'\bfrom\s*"([^"]+)"', wrapper)
    assert imports == ["./libsodium-sumo.js"]


def test_no_static_file_names_another_origin() -> None:
    files = [path for path in STATIC.rglob("*") if path.is_file()]
    assert any(path.name == "crypto-worker.js" for path in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        found = REMOTE_URL.search(text)
        assert found is None, f"{path.relative_to(ROOT)} names {found.group(0)!r}"


# --- the buyer page's copies (scripts/vendor-js.sh copies them from intake's folder) --------

NOTIFY_STATIC = ROOT / "services" / "notify" / "static"


def notify_sums() -> dict[str, str]:
    lines = (NOTIFY_STATIC / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def test_the_buyer_pages_copies_match_their_checksums_and_intakes_files() -> None:
    listed = notify_sums()
    assert {"vendor/libsodium-wrappers-sumo.js", "crypto/tlog.js"} <= set(listed)
    for name, digest in listed.items():
        copy = (NOTIFY_STATIC / name).read_bytes()
        assert hashlib.sha256(copy).hexdigest() == digest, name
        assert copy == (STATIC / name).read_bytes(), f"{name} differs from intake's"


def test_no_buyer_page_file_names_another_origin() -> None:
    for path in (p for p in NOTIFY_STATIC.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found = REMOTE_URL.search(text)
        assert found is None, f"{path.relative_to(ROOT)} names {found.group(0)!r}"
