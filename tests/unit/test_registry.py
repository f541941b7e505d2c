"""The registry's validation, the part that needs no store (hotline.shared.registry).

The writes and reads against the real store are in tests/integration/test_registry.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hotline.shared import registry
from hotline.shared.keys import b64encode, generate_keypair
from hotline.shared.registry import InvalidInput, check_buyer, check_factory

GOOD_KEY = b64encode(generate_keypair()[1])


def accepted(check: Callable[[], None]) -> bool:
    """True when the check passes, False when it refuses with InvalidInput."""
    try:
        check()
    except registry.InvalidInput:
        return False
    return True


@pytest.mark.parametrize("code", ["F-001", "AB", "SUNRISE-TOYS-2", "9" * 32])
def test_factory_codes_accepted(code: str) -> None:
    assert accepted(lambda: registry.check_factory(code, "Sunrise Toys", "CN"))


@pytest.mark.parametrize(
    "code", ["", "F", "f-001", "-F01", "F 001", "F_001", "F-001\n", "9" * 33, "Ｆ-001"]
)
def test_factory_codes_refused_with_the_expected_form(code: str) -> None:
    with pytest.raises(registry.InvalidInput, match="invalid factory code") as refused:
        registry.check_factory(code, "Sunrise Toys", "CN")
    assert registry.FACTORY_CODE.pattern in str(refused.value), "the message says what is valid"


@pytest.mark.parametrize("country", ["", "C", "cn", "CHN", "C1", "CN ", "CN\n"])
def test_countries_are_iso_alpha_2(country: str) -> None:
    with pytest.raises(registry.InvalidInput, match="country"):
        registry.check_factory("F-001", "Sunrise Toys", country)


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "x" * (registry.MAX_NAME + 1)])
def test_names_must_be_1_to_200_characters(name: str) -> None:
    with pytest.raises(registry.InvalidInput, match="factory name must be 1 to 200"):
        registry.check_factory("F-001", name, "CN")
    with pytest.raises(registry.InvalidInput, match="buyer name must be 1 to 200"):
        registry.check_buyer("buyer-1", name)


def test_names_at_the_limits_are_accepted() -> None:
    assert accepted(lambda: registry.check_factory("F-001", "x", "CN"))
    longest = " " + "x" * registry.MAX_NAME + " "  # measured stripped
    assert accepted(lambda: registry.check_buyer("buyer-1", longest))
    assert not accepted(lambda: registry.check_buyer("buyer-1", longest.strip() + "x"))


@pytest.mark.parametrize("buyer_id", ["b1", "buyer-1", "acme-brands-eu", "a" * 64])
def test_buyer_ids_accepted(buyer_id: str) -> None:
    assert accepted(lambda: registry.check_buyer(buyer_id, "Acme"))


@pytest.mark.parametrize(
    "buyer_id", ["", "b", "Buyer-1", "-buyer", "buyer 1", "a" * 65, "F-001", "buyer-1\n"]
)
def test_buyer_ids_refused(buyer_id: str) -> None:
    with pytest.raises(registry.InvalidInput, match="invalid buyer id"):
        registry.check_buyer(buyer_id, "Acme")


def test_a_public_key_decodes_to_its_32_bytes() -> None:
    public = generate_keypair()[1]
    assert registry.decode_public_key(b64encode(public)) == public
    assert registry.decode_public_key(f"  {b64encode(public)}\n") == public


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!",
        "AAAA",  # 3 bytes
        b64encode(bytes(31)),
        b64encode(bytes(33)),
        "A" * 43 + "=",  # the all-zero, low-order point
        GOOD_KEY.rstrip("="),  # unpadded: not canonical base64
    ],
)
def test_bad_public_keys_are_invalid_input_naming_the_field(text: str) -> None:
    with pytest.raises(registry.InvalidInput, match="^public key: "):
        registry.decode_public_key(text)


def test_refusals_are_typed_and_carry_no_http_status() -> None:
    kinds = [
        registry.InvalidInput,
        registry.UnknownFactory,
        registry.UnknownBuyer,
        registry.AlreadyExists,
        registry.NoOperatorKey,
    ]
    for kind in kinds:
        assert issubclass(kind, registry.RegistryError)
        assert not hasattr(kind("x"), "status")
    assert len({frozenset(k.__mro__) for k in kinds}) == len(kinds), "distinct kinds"


@pytest.mark.parametrize(
    "name",
    ["\u202e\u0007\u0000evil", "Sunrise\nToys", "Sunrise \u2066Toys", "\ud800", "Toys\ue000"],
)
def test_names_with_control_or_reordering_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="control or reordering"):
        check_factory("F-001", name, "CN")
    with pytest.raises(InvalidInput, match="control or reordering"):
        check_buyer("buyer-1", name)
    with pytest.raises(InvalidInput, match="control or reordering"):
        check_factory("F-001", "Sunrise Toys", "CN", city=name)


@pytest.mark.parametrize(
    "name", ["সূর্যোদয় খেলনা", "नई\u200dदिल्ली टॉयज़", "\u200fمصنع الشروق", "旭日玩具"]
)
def test_names_in_every_script_are_accepted(name: str) -> None:
    check_factory("F-001", name, "CN", city=name)
    check_buyer("buyer-1", name)


@pytest.mark.parametrize("code", ["Y-53491D\n", "F-001 ", "\ud800F-001"])
def test_codes_with_a_trailing_newline_or_stray_character_are_refused(code: str) -> None:
    with pytest.raises(InvalidInput):
        check_factory(code, "Sunrise Toys", "CN")
    with pytest.raises(InvalidInput):
        check_factory("F-001", "Sunrise Toys", "DE\n")
