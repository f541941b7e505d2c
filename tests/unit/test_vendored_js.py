"""The form's vendored crypto library is exactly the pinned one, and the form loads nothing
from another origin (services/intake/static/vendor/README.md)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

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


# --- the copies of the buyer page and of the operator console -------------------------------
# (scripts/vendor-js.sh copies them from intake's folder, and the signed-in pages' shared code
# from the buyer page's signin/ into the console's)

NOTIFY_STATIC = ROOT / "services" / "notify" / "static"
TRIAGE_STATIC = ROOT / "services" / "triage" / "static"
SIGNIN = NOTIFY_STATIC / "signin"
# the folder a copy's first path part comes from (a copy keeps the source's relative path)
SOURCE_OF = {"vendor": STATIC, "crypto": STATIC, "signin": NOTIFY_STATIC}
COPIES = {
    # folder -> files it must hold at least
    NOTIFY_STATIC: {"vendor/libsodium-wrappers-sumo.js", "crypto/tlog.js"},
    TRIAGE_STATIC: {
        "vendor/libsodium-wrappers-sumo.js",
        "crypto/envelope.js",
        "signin/signin.js",
        "signin/signed-in.js",
        "signin/signin.css",
    },
}
# folder -> its subfolders that hold copies only
COPIED_FOLDERS = {
    NOTIFY_STATIC: ("crypto", "vendor"),
    TRIAGE_STATIC: ("crypto", "vendor", "signin"),
}


def copy_sums(static: Path) -> dict[str, str]:
    lines = (static / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


@pytest.mark.parametrize("static", list(COPIES), ids=lambda path: path.parent.name)
def test_the_pages_copies_match_their_checksums_and_their_sources(static: Path) -> None:
    listed = copy_sums(static)
    assert COPIES[static] <= set(listed)
    for name, digest in listed.items():
        copy = (static / name).read_bytes()
        assert hashlib.sha256(copy).hexdigest() == digest, name
        source = SOURCE_OF[name.split("/", 1)[0]]
        assert copy == (source / name).read_bytes(), (
            f"{name} differs from {source.relative_to(ROOT)}'s"
        )


@pytest.mark.parametrize("static", list(COPIES), ids=lambda path: path.parent.name)
def test_every_file_of_a_pages_copied_folders_is_a_checked_copy(static: Path) -> None:
    """Nothing under a page's crypto/, vendor/ (or the console's signin/) escapes the check
    (but the copies' README)."""
    held = {
        path.relative_to(static).as_posix()
        for folder in COPIED_FOLDERS[static]
        for path in (static / folder).rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    assert held == set(copy_sums(static))


def test_the_console_has_a_copy_of_every_shared_signed_in_file() -> None:
    """A file added to the buyer page's signin/ reaches the console too (vendor-js.sh lists
    them), and the buyer page, the source, holds no copy of its own of them."""
    shared = {f"signin/{path.name}" for path in SIGNIN.iterdir() if path.is_file()}
    console = {name for name in copy_sums(TRIAGE_STATIC) if name.startswith("signin/")}
    assert shared == console
    assert not {name for name in copy_sums(NOTIFY_STATIC) if name.startswith("signin/")}


@pytest.mark.parametrize("static", list(COPIES), ids=lambda path: path.parent.name)
def test_no_page_file_names_another_origin(static: Path) -> None:
    for path in (p for p in static.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found = REMOTE_URL.search(text)
        assert found is None, f"{path.relative_to(ROOT)} names {found.group(0)!r}"
