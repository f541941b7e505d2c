"""Key pairs, key ids, key files and the platform signing key (hotline.shared.keys)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.shared.keys import (
    CryptoError,
    KeyFileError,
    KeyFormatError,
    WrongKeyKindError,
    b64decode_strict,
    b64encode,
    check_key_id,
    check_public_key,
    generate_keypair,
    key_id,
    load_or_create_signing_key,
    load_private_key,
    load_public_key,
    public_key_of,
    public_key_path,
    signing_key_from_hex,
    write_keypair,
)

# Vector: private key 00 01 .. 1f.
FIXED_PRIVATE = bytes(range(32))
FIXED_PUBLIC_B64 = "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8="
FIXED_KEY_ID = "x25519:7c6d07e39d4e1c563a598ee0966eeb3200559b6a0cd607edd4769cf3af5fc025"
LOW_ORDER_POINTS = [bytes(32), bytes([1]) + bytes(31)]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0 so that a file's mode comes only from how the code created it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_keypair_gives_matching_32_byte_keys() -> None:
    private, public = generate_keypair()
    assert len(private) == len(public) == 32
    assert public_key_of(private) == public
    assert generate_keypair()[0] != private


def test_key_id_vector_and_formula() -> None:
    public = public_key_of(FIXED_PRIVATE)
    assert b64encode(public) == FIXED_PUBLIC_B64
    assert key_id(public) == FIXED_KEY_ID
    expected = hashlib.sha256(b"hotline-key-id\x00" + public).hexdigest()
    assert key_id(public) == "x25519:" + expected
    assert check_key_id(FIXED_KEY_ID) == FIXED_KEY_ID


def test_key_ids_differ_between_keys() -> None:
    assert key_id(generate_keypair()[1]) != key_id(generate_keypair()[1])


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), *LOW_ORDER_POINTS])
def test_key_id_refuses_bad_public_keys(bad: bytes) -> None:
    with pytest.raises(KeyFormatError):
        key_id(bad)
    with pytest.raises(KeyFormatError):
        check_public_key(bad)


@pytest.mark.parametrize(
    "bad",
    [
        FIXED_KEY_ID.upper(),
        FIXED_KEY_ID[7:],
        "ed25519:" + FIXED_KEY_ID[7:],
        FIXED_KEY_ID[:-1],
        FIXED_KEY_ID + "0",
        FIXED_KEY_ID + "\n",
        42,
        None,
    ],
)
def test_check_key_id_refuses_malformed(bad: object) -> None:
    with pytest.raises(KeyFormatError):
        check_key_id(bad)


@pytest.mark.parametrize("bad", ["YQ", "YR==", " YQ==", "YQ==\n", "Y Q==", "YQ==YQ==", "é", "!!!!"])
def test_b64decode_strict_refuses_non_canonical(bad: str) -> None:
    with pytest.raises(KeyFormatError):
        b64decode_strict(bad)


def test_b64_round_trip() -> None:
    for data in [b"", b"a", b"ab", b"abc", bytes(range(256))]:
        assert b64decode_strict(b64encode(data)) == data


def test_write_keypair_modes_and_round_trip(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "operator.key"
    kid = write_keypair(path)
    pub_path = public_key_path(path)
    assert pub_path == tmp_path / "operator.key.pub"
    assert mode_of(path) == 0o600
    assert mode_of(pub_path) == 0o644
    private = load_private_key(path)
    public = load_public_key(pub_path)
    assert public_key_of(private) == public
    assert kid == key_id(public)
    # Each file says what it holds, then the key in base64.
    assert pub_path.read_text() == f"hotline x25519 public key {kid}\n{b64encode(public)}\n"
    assert path.read_text() == f"hotline x25519 private key {kid}\n{b64encode(private)}\n"


def test_write_keypair_refuses_to_overwrite_private_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_keypair(path)
    before = path.read_bytes(), public_key_path(path).read_bytes()
    with pytest.raises(KeyFileError, match="overwrite"):
        write_keypair(path)
    assert (path.read_bytes(), public_key_path(path).read_bytes()) == before


def test_write_keypair_refuses_existing_public_key_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "k"
    public_key_path(path).write_text("someone else's\n")
    with pytest.raises(KeyFileError, match="overwrite"):
        write_keypair(path)
    assert not path.exists()
    assert public_key_path(path).read_text() == "someone else's\n"


def test_write_keypair_does_not_follow_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    path = tmp_path / "k"
    path.symlink_to(target)
    with pytest.raises(KeyFileError):
        write_keypair(path)
    assert not target.exists()


def test_load_private_key_refuses_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_keypair(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)


def test_a_public_key_given_as_private_key_is_named_so_even_after_chmod(tmp_path: Path) -> None:
    path = tmp_path / "buyer1.key"
    write_keypair(path)
    pub = public_key_path(path)
    for mode in (0o644, 0o600):  # the old code said "chmod 600", then took it as private
        pub.chmod(mode)
        with pytest.raises(WrongKeyKindError, match=r"is a public key.*probably buyer1\.key\)"):
            load_private_key(pub)


def test_a_private_key_given_as_public_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "operator.key"
    write_keypair(path)
    with pytest.raises(WrongKeyKindError, match=r"PRIVATE key.*operator\.key\.pub"):
        load_public_key(path)


def test_old_bare_base64_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    private, public = generate_keypair()
    old_private, old_public = tmp_path / "old.key", tmp_path / "old.key.pub"
    old_private.write_text(b64encode(private) + "\n")
    old_private.chmod(0o600)
    old_public.write_text(b64encode(public) + "\n")
    with pytest.raises(KeyFormatError, match="bare base64.*cannot tell a private key"):
        load_private_key(old_private)
    with pytest.raises(KeyFormatError, match="bare base64"):
        load_public_key(old_public)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not base64!\n",
        b"hotline x25519 private key x25519:00\nnot base64!\n",
        b"hotline x25519 private key x25519:00\n" + b64encode(bytes(31)).encode() + b"\n",
        b"hotline x25519 secret key x25519:00\n" + b64encode(bytes(32)).encode() + b"\n",
        b"PRIVATE+KEY+auditor.example+06+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n",
        b"\xff\xfe",
    ],
)
def test_load_private_key_refuses_what_is_not_a_key_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFormatError, match="not a hotline key file|second line|32 bytes"):
        load_private_key(path)


def test_a_key_that_does_not_match_its_key_id_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_keypair(path)
    other = tmp_path / "other"
    write_keypair(other)
    header = path.read_text().splitlines()[0]
    path.write_text(header + "\n" + other.read_text().splitlines()[1] + "\n")
    with pytest.raises(KeyFormatError, match="damaged"):
        load_private_key(path)
    pub = public_key_path(path)
    pub.write_text(pub.read_text().splitlines()[0] + "\n" + FIXED_PUBLIC_B64 + "\n")
    with pytest.raises(KeyFormatError, match="damaged"):
        load_public_key(pub)


def test_a_public_key_file_with_a_low_order_point_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pub"
    path.write_text(f"hotline x25519 public key {FIXED_KEY_ID}\n{b64encode(bytes(32))}\n")
    with pytest.raises(KeyFormatError, match="low-order"):
        load_public_key(path)


def test_a_large_file_is_not_read_as_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"A" * 5000)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="too large"):
        load_private_key(path)


def test_load_private_key_missing_or_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "absent")
    with pytest.raises(KeyFileError):
        load_private_key(tmp_path)


def test_load_public_key_from_text() -> None:
    public = generate_keypair()[1]
    assert load_public_key(b64encode(public)) == public
    assert load_public_key("  " + b64encode(public) + "\n") == public


@pytest.mark.parametrize(
    "bad",
    ["", "hello", b64encode(bytes(16)), b64encode(bytes(32)), "keys/operator.key.pub"],
)
def test_load_public_key_refuses_malformed_text(bad: str) -> None:
    with pytest.raises(KeyFormatError):
        load_public_key(bad)


def test_signing_key_from_hex() -> None:
    seed = bytes(range(32))
    key = signing_key_from_hex(seed.hex())
    assert bytes(key) == seed
    assert signing_key_from_hex(seed.hex().upper()).verify_key == key.verify_key
    for bad in ["", seed.hex()[:-2], seed.hex() + "00", "zz" * 32, " " + seed.hex()[1:]]:
        with pytest.raises(KeyFormatError):
            signing_key_from_hex(bad)


def test_load_or_create_signing_key_creates_once(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "signing.key"
    first = load_or_create_signing_key(path)
    assert mode_of(path) == 0o600
    assert path.read_text() == bytes(first).hex() + "\n"
    second = load_or_create_signing_key(path)
    assert bytes(second) == bytes(first)
    assert [p.name for p in tmp_path.iterdir()] == ["signing.key"]  # no temporary left


def test_load_or_create_signing_key_concurrent_starters_agree(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    seeds: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        seeds.append(bytes(load_or_create_signing_key(path)))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seeds) == 8 and len(set(seeds)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["signing.key"]


def test_load_or_create_signing_key_refuses_bad_existing(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    path.write_text("not a seed\n")
    path.chmod(0o600)
    with pytest.raises(KeyFormatError):
        load_or_create_signing_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError):
        load_or_create_signing_key(path)


def test_errors_share_one_base() -> None:
    assert issubclass(KeyFormatError, CryptoError)
    assert issubclass(KeyFileError, CryptoError)
