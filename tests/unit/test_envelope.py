"""The versioned report envelope (hotline.shared.envelope)."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from typing import Any

import pytest
import rfc8785
from pydantic import ValidationError

from hotline.shared.envelope import (
    MAX_PLAINTEXT_BYTES,
    PADDED_SIZES,
    Envelope,
    EnvelopeError,
    EnvelopeFormatError,
    EnvelopeIntegrityError,
    EnvelopeKind,
    KeyIdMismatch,
    NotARecipient,
    PlaintextTooLarge,
    associated_data,
    envelope_hash,
    envelope_recipients,
    open_envelope,
    padded_size,
    seal_envelope,
    validate_envelope_shape,
)
from hotline.shared.events import (
    Event,
    EventError,
    MessagePosted,
    ReportSubmitted,
    event_data,
    new_event,
    parse_event,
)
from hotline.shared.keys import (
    CryptoError,
    b64decode_strict,
    b64encode,
    generate_keypair,
    key_id,
)
from hotline.shared.reports import ReportCreate, routing_metadata

CASE = "case-0001"
MESSAGE = "0d3f8c2e-5b1a-4c3d-9e8f-7a6b5c4d3e2f"
ROUTING: dict[str, Any] = {
    "factory": "F-042",
    "categories": ["wages.unpaid", "safety.exit"],
    "urgent": True,
    "language": "bn",
    "channel": "web",
}
TEXT = b"The fire exit on floor 3 is locked every night."


class Party:
    def __init__(self) -> None:
        self.private, self.public = generate_keypair()
        self.id = key_id(self.public)


@pytest.fixture(scope="module")
def operator() -> Party:
    return Party()


@pytest.fixture(scope="module")
def buyer() -> Party:
    return Party()


@pytest.fixture(scope="module")
def outsider() -> Party:
    return Party()


@pytest.fixture
def sealed(operator: Party, buyer: Party) -> Envelope:
    return seal_envelope(
        TEXT,
        case_id=CASE,
        kind="content",
        routing=ROUTING,
        recipients={operator.id: operator.public, buyer.id: buyer.public},
    )


@pytest.fixture
def envelope(sealed: Envelope) -> dict[str, Any]:
    """The sealed envelope as its JSON object (as the store and the wire hold it)."""
    return sealed.model_dump()


def open_as(party: Party, env: Any, *, case_id: str = CASE, routing: Any = None) -> bytes:
    return open_envelope(
        env,
        private_key=party.private,
        case_id=case_id,
        routing=ROUTING if routing is None else routing,
    )


def flip(b64: str, index: int = 0) -> str:
    data = bytearray(b64decode_strict(b64))
    data[index] ^= 0x01
    return b64encode(bytes(data))


# --- round trips ----------------------------------------------------------------------------


def test_every_recipient_opens(envelope: dict[str, Any], operator: Party, buyer: Party) -> None:
    assert open_as(operator, envelope) == TEXT
    assert open_as(buyer, envelope) == TEXT


def test_shape_of_a_sealed_envelope(
    envelope: dict[str, Any], operator: Party, buyer: Party
) -> None:
    assert set(envelope) == {"version", "kind", "case_id", "recipients", "nonce", "ciphertext"}
    assert envelope["version"] == 1
    assert envelope["kind"] == "content"
    assert envelope["case_id"] == CASE
    assert set(envelope["recipients"]) == {operator.id, buyer.id}
    assert len(b64decode_strict(envelope["nonce"])) == 24
    validate_envelope_shape(envelope, kind="content", case_id=CASE)
    assert envelope_recipients(envelope) == {operator.id, buyer.id}


def test_identity_envelope_and_json_transport(operator: Party) -> None:
    env = seal_envelope(
        b"Name: A. Worker, line 7",
        case_id=CASE,
        kind="identity",
        routing=ROUTING,
        recipients={operator.id: operator.public},
    )
    over_the_wire = json.loads(json.dumps(env.model_dump(), indent=2))
    assert open_as(operator, over_the_wire) == b"Name: A. Worker, line 7"
    assert envelope_hash(over_the_wire) == envelope_hash(env)
    with pytest.raises(EnvelopeFormatError):
        validate_envelope_shape(env, kind="content")


def test_empty_and_largest_plaintexts_round_trip(operator: Party) -> None:
    for text in [b"", b"\x80", b"x\x80\x00\x00", bytes(MAX_PLAINTEXT_BYTES)]:
        env = seal_envelope(
            text,
            case_id=CASE,
            kind="content",
            routing={},
            recipients={operator.id: operator.public},
        )
        assert open_as(operator, env, routing={}) == text


def test_each_seal_is_fresh(operator: Party) -> None:
    one, two = (
        seal_envelope(
            TEXT,
            case_id=CASE,
            kind="content",
            routing=ROUTING,
            recipients={operator.id: operator.public},
        )
        for _ in range(2)
    )
    assert one.nonce != two.nonce
    assert one.ciphertext != two.ciphertext
    assert one.recipients != two.recipients


# --- who may open ---------------------------------------------------------------------------


def test_non_recipient_gets_not_a_recipient(envelope: dict[str, Any], outsider: Party) -> None:
    with pytest.raises(NotARecipient):
        open_as(outsider, envelope)


def test_private_key_of_wrong_length_is_refused(envelope: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeFormatError):
        open_envelope(envelope, private_key=bytes(31), case_id=CASE, routing=ROUTING)


# --- tampering ------------------------------------------------------------------------------


def test_tampered_ciphertext_fails(envelope: dict[str, Any], operator: Party) -> None:
    for index in [0, 100, -1]:
        env = copy.deepcopy(envelope)
        env["ciphertext"] = flip(env["ciphertext"], index)
        with pytest.raises(EnvelopeIntegrityError):
            open_as(operator, env)


def test_tampered_nonce_fails(envelope: dict[str, Any], operator: Party) -> None:
    envelope["nonce"] = flip(envelope["nonce"], 5)
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope)


def test_tampered_wrapped_key_fails(envelope: dict[str, Any], operator: Party) -> None:
    for index in [0, 40, -1]:
        env = copy.deepcopy(envelope)
        env["recipients"][operator.id] = flip(env["recipients"][operator.id], index)
        with pytest.raises(EnvelopeIntegrityError):
            open_as(operator, env)


def test_swapped_wrapped_keys_fail(envelope: dict[str, Any], operator: Party, buyer: Party) -> None:
    wrapped = envelope["recipients"]
    wrapped[operator.id], wrapped[buyer.id] = wrapped[buyer.id], wrapped[operator.id]
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope)


@pytest.mark.parametrize(
    "routing",
    [
        {**ROUTING, "urgent": False},
        {**ROUTING, "factory": "F-043"},
        {**ROUTING, "categories": ["safety.exit", "wages.unpaid"]},
        {**ROUTING, "extra": "x"},
        {k: v for k, v in ROUTING.items() if k != "channel"},
        {},
    ],
)
def test_altered_routing_fails(
    envelope: dict[str, Any], operator: Party, routing: dict[str, Any]
) -> None:
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope, routing=routing)


def test_other_case_id_fails(envelope: dict[str, Any], operator: Party) -> None:
    # Opened for another case: refused at once.
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope, case_id="case-0002")
    # Moved to another case, its own case_id edited to match: the associated data catches it.
    envelope["case_id"] = "case-0002"
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope, case_id="case-0002")


def test_changed_kind_fails(envelope: dict[str, Any], operator: Party) -> None:
    envelope["kind"] = "identity"
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope)


def test_removed_recipient_fails(envelope: dict[str, Any], operator: Party, buyer: Party) -> None:
    del envelope["recipients"][buyer.id]
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope)


def test_added_recipient_fails(envelope: dict[str, Any], operator: Party, outsider: Party) -> None:
    envelope["recipients"][outsider.id] = envelope["recipients"][operator.id]
    with pytest.raises(EnvelopeIntegrityError):
        open_as(operator, envelope)
    # ... and the newcomer cannot use a key wrapped for someone else.
    with pytest.raises(EnvelopeIntegrityError):
        open_as(outsider, envelope)


def test_version_change_is_a_format_error(envelope: dict[str, Any], operator: Party) -> None:
    for version in [2, True, "1", 1.0]:
        env = copy.deepcopy(envelope)
        env["version"] = version
        with pytest.raises(EnvelopeFormatError):
            open_as(operator, env)


# --- padding --------------------------------------------------------------------------------


def test_buckets_are_powers_of_two_from_1_to_64_kib() -> None:
    assert PADDED_SIZES == (1024, 2048, 4096, 8192, 16384, 32768, 65536)
    assert MAX_PLAINTEXT_BYTES == 65535


@pytest.mark.parametrize(
    ("length", "bucket"),
    [(0, 1024), (1, 1024), (1023, 1024), (1024, 2048), (2047, 2048), (5000, 8192), (65535, 65536)],
)
def test_padded_size(length: int, bucket: int) -> None:
    assert padded_size(length) == bucket


def ciphertext_length(party: Party, text: bytes) -> int:
    env = seal_envelope(
        text, case_id=CASE, kind="content", routing=ROUTING, recipients={party.id: party.public}
    )
    return len(b64decode_strict(env.ciphertext))


def test_lengths_in_one_bucket_give_equal_ciphertexts(operator: Party) -> None:
    assert ciphertext_length(operator, b"a") == ciphertext_length(operator, b"a" * 1023) == 1040
    assert ciphertext_length(operator, b"a" * 1024) == ciphertext_length(operator, b"a" * 2047)
    assert ciphertext_length(operator, b"a" * 1024) == 2048 + 16


def test_too_large_plaintext_is_refused(operator: Party) -> None:
    with pytest.raises(PlaintextTooLarge):
        ciphertext_length(operator, bytes(MAX_PLAINTEXT_BYTES + 1))


# --- refusing bad input to seal -------------------------------------------------------------


def test_seal_refuses_key_id_mismatch(operator: Party, buyer: Party) -> None:
    with pytest.raises(KeyIdMismatch):
        seal_envelope(
            TEXT,
            case_id=CASE,
            kind="content",
            routing=ROUTING,
            recipients={operator.id: buyer.public},
        )


@pytest.mark.parametrize(
    "change",
    [
        {"recipients": {}},
        {"recipients": {"x25519:" + "0" * 64: bytes(32)}},  # low-order point
        {"recipients": {"operator": b"k" * 32}},
        {"kind": "photo"},
        {"case_id": ""},
        {"case_id": "c" * 129},
        {"case_id": "case\n1"},
        {"routing": {"factory": b"bytes"}},
        {"routing": {"n": float("nan")}},
        {"routing": {"n": 2**60}},
        {"routing": {1: "non-str key"}},
        {"routing": ["not", "a", "mapping"]},
    ],
)
def test_seal_refuses_malformed_arguments(operator: Party, change: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "case_id": CASE,
        "kind": "content",
        "routing": ROUTING,
        "recipients": {operator.id: operator.public},
        **change,
    }
    with pytest.raises(EnvelopeFormatError):
        seal_envelope(TEXT, **arguments)


def test_seal_refuses_text(operator: Party) -> None:
    with pytest.raises(EnvelopeFormatError):
        seal_envelope(
            "text",  # type: ignore[arg-type]
            case_id=CASE,
            kind="content",
            routing={},
            recipients={operator.id: operator.public},
        )


# --- shape validation, recipients, hash -----------------------------------------------------


def _malformed(envelope: dict[str, Any], operator: Party) -> list[Any]:
    def edited(**fields: Any) -> dict[str, Any]:
        env = copy.deepcopy(envelope)
        env.update(fields)
        return env

    wrapped = envelope["recipients"][operator.id]
    missing = copy.deepcopy(envelope)
    del missing["nonce"]
    return [
        None,
        [],
        "envelope",
        missing,
        edited(extra="x"),
        edited(version=None),
        edited(kind=None),
        edited(case_id=7),
        edited(recipients=[]),
        edited(recipients={}),
        edited(recipients={"bad id": wrapped}),
        edited(recipients={operator.id: wrapped[:-4]}),
        edited(recipients={operator.id: 17}),
        edited(recipients={f"x25519:{i:064x}": wrapped for i in range(65)}),
        edited(nonce=b64encode(bytes(12))),
        edited(nonce=envelope["nonce"] + " "),
        edited(ciphertext=b64encode(bytes(1000 + 16))),  # not padded to a bucket
        edited(ciphertext=b64encode(bytes(1024))),  # bucket without the tag
        edited(ciphertext=b64encode(bytes(131072 + 16))),
        edited(ciphertext="not base64"),
    ]


def test_validate_envelope_shape_refuses_malformed(
    envelope: dict[str, Any], operator: Party
) -> None:
    for bad in _malformed(envelope, operator):
        with pytest.raises(EnvelopeFormatError):
            validate_envelope_shape(bad)
        with pytest.raises(EnvelopeFormatError):
            envelope_hash(bad)


def test_validate_envelope_shape_checks_expected_case(envelope: dict[str, Any]) -> None:
    validate_envelope_shape(envelope, case_id=CASE)
    with pytest.raises(EnvelopeIntegrityError):
        validate_envelope_shape(envelope, case_id="case-0002")


def test_envelope_hash(envelope: dict[str, Any], operator: Party) -> None:
    digest = envelope_hash(envelope)
    assert digest == hashlib.sha256(rfc8785.dumps(envelope)).hexdigest()
    reordered = dict(reversed(list(envelope.items())))
    reordered["recipients"] = dict(reversed(list(envelope["recipients"].items())))
    assert envelope_hash(reordered) == digest
    envelope["ciphertext"] = flip(envelope["ciphertext"])
    assert envelope_hash(envelope) != digest


# --- the typed envelope (Envelope) at the boundaries ---------------------------------------


def test_sealing_gives_the_model_whose_json_is_the_envelope_json(sealed: Envelope) -> None:
    fields = ["version", "kind", "case_id", "recipients", "nonce", "ciphertext"]
    assert list(sealed.model_dump()) == fields, "same fields, same order as before typing"
    assert json.loads(sealed.model_dump_json()) == sealed.model_dump()
    assert Envelope.model_validate(sealed.model_dump()) == sealed
    assert Envelope.model_validate_json(sealed.model_dump_json()) == sealed


def test_the_model_refuses_exactly_what_the_shape_check_refuses(
    envelope: dict[str, Any], operator: Party
) -> None:
    for bad in _malformed(envelope, operator):
        with pytest.raises(EnvelopeFormatError) as shape_error:
            validate_envelope_shape(bad)
        with pytest.raises(ValidationError) as model_error:
            Envelope.model_validate(bad)
        [error] = model_error.value.errors()
        assert error["type"] == "envelope_shape"
        assert error["msg"] == str(shape_error.value), "one source of truth, one message"


def test_readers_take_the_model_or_its_json(
    sealed: Envelope, envelope: dict[str, Any], operator: Party, buyer: Party
) -> None:
    assert open_as(operator, sealed) == open_as(operator, envelope) == TEXT
    assert envelope_hash(sealed) == envelope_hash(envelope)
    assert envelope_recipients(sealed) == envelope_recipients(envelope) == {operator.id, buyer.id}
    with pytest.raises(EnvelopeIntegrityError):
        validate_envelope_shape(sealed, case_id="case-0002")


def test_events_carry_the_same_json_as_before_typing(
    operator: Party, buyer: Party, sealed: Envelope
) -> None:
    """The audit log's entries are made from an event's JSON data: typing the envelope must
    not change one byte of it, in Kafka or in the store."""
    identity = seal_envelope(
        b"A. Worker",
        case_id=CASE,
        kind="identity",
        routing={},
        recipients={operator.id: operator.public},
    )
    routing = routing_metadata("F-042", ["safety"], True, "bn")
    typed = new_event(
        CASE,
        ReportSubmitted(
            **routing,
            channel="web",
            server_encrypted=False,
            content=sealed,
            identity=identity,
        ),
    )
    as_before = {
        **routing,
        "channel": "web",
        "server_encrypted": False,
        "content": sealed.model_dump(),
        "identity": identity.model_dump(),
        "attachments": [],
        "reply_key": None,
    }
    assert typed.data == as_before
    untyped = Event(id=typed.id, type=typed.type, time=typed.time, subject=CASE, data=as_before)
    assert typed.to_bytes() == untyped.to_bytes()
    parsed = event_data(parse_event(typed.to_bytes()), ReportSubmitted)
    assert parsed.content == sealed and parsed.identity == identity
    reply = MessagePosted(
        message_id=MESSAGE, kind="reply", author_role="triage-analyst", envelope=sealed
    )
    assert new_event(CASE, reply).data == {
        "message_id": MESSAGE,
        "kind": "reply",
        "author_role": "triage-analyst",
        "envelope": sealed.model_dump(),
        "in_reply_to": None,
        "attachments": [],
    }


def test_an_event_with_a_malformed_envelope_is_poison(envelope: dict[str, Any]) -> None:
    envelope["nonce"] = b64encode(bytes(12))
    data = {
        "message_id": MESSAGE,
        "kind": "reply",
        "author_role": "triage-analyst",
        "envelope": envelope,
    }
    raw = Event(type=MessagePosted.TYPE, subject=CASE, data=data).to_bytes()
    with pytest.raises(EventError):
        parse_event(raw)


def report_body(**change: Any) -> dict[str, Any]:
    operator = Party()
    routing = {"factory": "F-042", "categories": ["safety"], "urgent": False, "language": "en"}
    case_id = str(uuid.uuid4())

    def sealed_as(kind: EnvelopeKind, of_case: str = case_id) -> dict[str, Any]:
        envelope = seal_envelope(
            b"x",
            case_id=of_case,
            kind=kind,
            routing=routing,
            recipients={operator.id: operator.public},
        )
        return envelope.model_dump()

    body = {
        **routing,
        "case_id": case_id,
        "lookup_token": "ab" * 32,
        "reply_key": b64encode(operator.public),
        "content": sealed_as("content"),
        "identity": sealed_as("identity"),
    }
    for field, value in change.items():
        body[field] = value(sealed_as, case_id) if callable(value) else value
    return body


def test_report_create_takes_the_envelopes_as_models() -> None:
    body = report_body()
    report = ReportCreate.model_validate(body)
    assert isinstance(report.content, Envelope) and isinstance(report.identity, Envelope)
    assert report.model_dump(mode="json")["content"] == body["content"]
    assert ReportCreate.model_validate(report_body(identity=None)).identity is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"content": lambda sealed_as, _: sealed_as("identity")}, "not the content of this case"),
        ({"identity": lambda sealed_as, _: sealed_as("content")}, "not the identity of this case"),
        (
            {"content": lambda sealed_as, _: sealed_as("content", str(uuid.uuid4()))},
            "not the content of this case",
        ),
        ({"content": {"version": 1}}, "envelope fields: missing"),
        ({"identity": "ciphertext"}, "an envelope is a JSON object"),
    ],
)
def test_report_create_refuses_envelopes_that_are_not_this_cases(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        ReportCreate.model_validate(report_body(**change))
    assert message in str(refused.value)


@pytest.mark.parametrize("language", ["en\n", "EN", "english", ""])
def test_report_create_refuses_a_language_that_is_not_a_tag(language: str) -> None:
    with pytest.raises(ValidationError, match="BCP 47"):
        ReportCreate.model_validate(report_body(language=language))


# --- vectors --------------------------------------------------------------------------------


def test_associated_data_vector() -> None:
    aad = associated_data(
        kind="content",
        case_id=CASE,
        routing=ROUTING,
        recipient_ids=["x25519:" + "b" * 64, "x25519:" + "a" * 64],
    )
    assert aad == (
        b'{"case_id":"case-0001","kind":"content","recipients":["x25519:'
        + b"a" * 64
        + b'","x25519:'
        + b"b" * 64
        + b'"],"routing":{"categories":["wages.unpaid","safety.exit"],"channel":"web",'
        b'"factory":"F-042","language":"bn","urgent":true},"version":1}'
    )


def test_associated_data_refuses_duplicate_recipients() -> None:
    with pytest.raises(EnvelopeFormatError):
        associated_data(
            kind="content", case_id=CASE, routing={}, recipient_ids=["x25519:" + "a" * 64] * 2
        )


# Sealed once with the private key 00 01 .. 1f; opening it pins the format across versions
# and gives the browser implementation a known answer.
VECTOR_PRIVATE = bytes(range(32))
VECTOR_ROUTING = {"factory": "F-042", "categories": ["wages.unpaid"], "urgent": False}
VECTOR_PLAINTEXT = "Überstunden ohne Lohn.".encode()
VECTOR_ENVELOPE = {
    "version": 1,
    "kind": "content",
    "case_id": "case-0001",
    "recipients": {
        "x25519:7c6d07e39d4e1c563a598ee0966eeb3200559b6a0cd607edd4769cf3af5fc025": (
            "olpzxOPTgNa+Ee/E4aWejh95NJkvAl2l84QI+0D4AUocZjp8QJ08HnAydycd"
            "/2vxxETv/Rgl2dpQFOtAVlAwSqm60mzQO5kAUD/psLcuMyQ="
        )
    },
    "nonce": "S3iy/YhzsItdyjhiT5Q0NRUX/BowTMZT",
    "ciphertext": (
        "lc/B+F+/osWXnv9UfEiY3lJb3S0jlAu2cnf02bn+DNoZQTirNXk0Wp+e9X+7sQlWvti+mfIAbaDcJBQXHu0ZcTLH"
        "enVpXwmxSzZjf/gziy6NcOBtsYTls+Ax4uwvcmEQ9TP6x9T860scHmFDFHqx6GblCOMZIAKV/np4ngS51ZhpxkjB"
        "os93zv5oU0/ggWXLarErLcMAQVjdI+iTjQOzBdlqthmDc07y5NH0e9iUu12yMKtClAuTnmd/e6JPvZpkvIJneGjr"
        "q9r2+5yJgVcZ0dnYGCmEA4X5+r2aERlQV61HZcWPUhiwpplQkZVA3+NCqkuT5V3jA9XRe+pxKdTDuS8RItQw/Z7S"
        "x5iDL6/BnOld3Gp/rpi4GjamSDP8g/WfVABQeGu6gnOxkGf+Upo9NVjnmITfOenCo+PvXf39pQ5xVKAFGIUGz7LW"
        "tp2xjPYL2XTRSfq92sVJ5Mg/oaKUBFKulPc2eoXcJP6I80TGhWh707ti6khpnTRq6jSWN7bF7PH97OOYm01a4mNt"
        "SM/sL3PzzDg4DuUh5RFHwxIL9SevhFGU/gtcdGZ3Ve5H12OHSBd1oRMsA02l+Ppt+BRIQMxu2Z8rJXrO2bay9Xcq"
        "8LcPwdsz+PsVhm3LCEeBpjt8QQbWC1XTnvCnrf1c+c21y6/RA0FecBcRIL3Rir2Y9O7jMTwMRoJSoVOye5F7UmnQ"
        "OoZpmzxH3JR7YhgSmIIBgG8CMxeUj7bv/h2lw6Kz6QNRFE1j/Cc3fQRhteKW80tZMbM0QIKZFzyWfMur52+mjrEm"
        "XTzoHseMXt5KiYpGkpnB0CZ+/qtfP1BpXoSZTXMj961xnC0zhOcbqjvQUt+gazr3gJXqKU9AZEvhcuXd9l+f/LNV"
        "EzGKN72LeB4AVBzVwn3bjvlVKUVkwoipvtDuu/59ApK/KeIkRaVzZB/M8PPT9vjJrh4BgMSxCqeKcaQJLZT4rSTB"
        "XQ4DrM2Ih0crpqIsYvhJUTt8hk5sD0veoXEBQ11CjxPlkO4AVB8hGC4/hg0xR/pW3o7O4tb+spNI3CZKuwyw9DpT"
        "ihExxtv8DswswnwlJvS00NBgJNGy3jo8M30+RPpjTxM0BeUhmG2RscYui0X4IpYs3Yi/iKc+jXyhyIhqrU/FTQ56"
        "fM4mAYrYZB2Zkn2m6O5x9gl0KiJQZmR4Yk5d2MtyWYxskr3ysuGkAbKGA+wWDf708LGvieygMzctgy63temYkPL9"
        "DX1Up+7N9M8oDhizvaFDSxJrtmzfTqnY2jteLF+3F/TVvaHirRb/an/ZjOUSMVORUH4Th4QzwBhZ68VoAQP/5jQI"
        "h80PJ0jUtOV5CS2jETc3DEufgp1vG3LNzD4gk1FU6ptv2A+Qm/B9MFsmVTv6CvO2JCc="
    ),
}
VECTOR_HASH = "850bdacc317591430b24499c824067bfa0738e68fa94e50524e5a27d464526dc"


def test_known_envelope_opens() -> None:
    opened = open_envelope(
        VECTOR_ENVELOPE, private_key=VECTOR_PRIVATE, case_id="case-0001", routing=VECTOR_ROUTING
    )
    assert opened == VECTOR_PLAINTEXT
    assert envelope_hash(VECTOR_ENVELOPE) == VECTOR_HASH


def test_errors_share_one_base() -> None:
    for error in [EnvelopeFormatError, EnvelopeIntegrityError, NotARecipient, KeyIdMismatch]:
        assert issubclass(error, EnvelopeError)
    assert issubclass(PlaintextTooLarge, EnvelopeError)
    assert issubclass(EnvelopeError, CryptoError)


def test_an_attachment_is_padded_to_its_own_larger_buckets(operator: Party) -> None:
    """A photo of 100 KB lands in the 128 KiB bucket; a content envelope could not hold it."""
    photo = b"image/jpeg\n" + bytes(100_000)
    envelope = seal_envelope(
        photo,
        case_id=CASE,
        kind="attachment",
        routing={},
        recipients={operator.id: operator.public},
    )
    assert len(b64decode_strict(envelope.ciphertext)) == 128 * 1024 + 16
    assert open_envelope(envelope, private_key=operator.private, case_id=CASE, routing={}) == photo
    with pytest.raises(PlaintextTooLarge):
        seal_envelope(
            photo,
            case_id=CASE,
            kind="content",
            routing={},
            recipients={operator.id: operator.public},
        )
    with pytest.raises(PlaintextTooLarge):
        padded_size(4 * 1024 * 1024, "attachment")
