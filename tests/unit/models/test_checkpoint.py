"""Tests for signed notes, checkpoints (sealtrail.models.checkpoint) and their verification."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import CheckpointInvalidError, KeyMalformedError, UsageError
from sealtrail.models import checkpoint as checkpoint_module
from sealtrail.models.checkpoint import (
    MAX_NOTE_BYTES,
    Checkpoint,
    NoteSignature,
    SignedNote,
    note_key_id,
    sign_note,
)
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.fakes.notes import (
    FakeLog,
    add_cosignature,
    add_signature_line,
    b64,
    checkpoint_body,
    make_ecdsa_log,
    make_ed25519_log,
    make_rsa_log,
    make_witness_key,
)

E = CheckpointInvalidError
REPO = Path(__file__).resolve().parents[3]
PUBLIC_GOOD = REPO / "src" / "sealtrail" / "data" / "public-good"
ROOT = hashlib.sha256(b"root").digest()


def _conformance_dir() -> Path:
    # The project keeps its own copy of the sigstore-conformance sample.
    return REPO / "tests" / "vectors" / "conformance"


@pytest.fixture(scope="module")
def v1() -> FakeLog:
    return make_ecdsa_log()


@pytest.fixture(scope="module")
def v2() -> FakeLog:
    return make_ed25519_log()


@pytest.fixture(params=["v1", "v2"])
def any_log(request: pytest.FixtureRequest, v1: FakeLog, v2: FakeLog) -> FakeLog:
    return v1 if request.param == "v1" else v2


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, (old, text)
    return text.replace(old, new)


def sig_line(name: str, blob: str) -> str:
    return f"\u2014 {name} {blob}\n"


GOOD_BLOB = b64(b"\x01\x02\x03\x04signature")
GOOD_NOTE = "origin\n1\n" + b64(ROOT) + "\n\n" + sig_line("origin", GOOD_BLOB)


def test_all_is_sorted() -> None:
    assert checkpoint_module.__all__ == sorted(checkpoint_module.__all__)


# -- SignedNote ---------------------------------------------------------------------------


def test_signed_note_parses_and_round_trips() -> None:
    note = SignedNote.from_text(GOOD_NOTE)
    assert note.body == "origin\n1\n" + b64(ROOT) + "\n"
    assert note.signatures == (NoteSignature("origin", b"\x01\x02\x03\x04", b"signature"),)
    assert note.to_text() == GOOD_NOTE


def test_signed_note_keeps_unknown_signers() -> None:
    text = GOOD_NOTE + sig_line("witness.example/a", GOOD_BLOB)
    assert [s.name for s in SignedNote.from_text(text).signatures] == ["origin",
                                                                       "witness.example/a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("origin\n1\n" + b64(ROOT) + "\n" + sig_line("origin", GOOD_BLOB),
         "no blank line separating text and signatures"),
        ("origin\n\n1\n\n" + sig_line("origin", GOOD_BLOB), "more than one blank line"),
        (GOOD_NOTE + "\n" + sig_line("origin", GOOD_BLOB), "more than one blank line"),
        ("origin\n1\n\n", "no signature lines"),
        (GOOD_NOTE[:-1], "does not end with a newline"),
        ("\n\n" + sig_line("origin", GOOD_BLOB), "empty line"),
        ("\norigin\n\n" + sig_line("origin", GOOD_BLOB), "empty line"),
        ("ori\tgin\n1\n\n" + sig_line("origin", GOOD_BLOB), "control character"),
        ("origin\r\n1\n\n" + sig_line("origin", GOOD_BLOB), "control character"),
        ("origin\n1\n\n" + sig_line("origin", GOOD_BLOB) + "\n", "more than one blank line"),
        ("origin\n1\n\n" + sig_line("origin", GOOD_BLOB) + "x\n", "malformed"),
        ("origin\n1\n\n- origin " + GOOD_BLOB + "\n", "malformed"),
        ("origin\n1\n\n\u2014origin " + GOOD_BLOB + "\n", "malformed"),
        ("origin\n1\n\n\u2014  origin " + GOOD_BLOB + "\n", "malformed"),
        ("origin\n1\n\n\u2014 origin  " + GOOD_BLOB + "\n", "malformed"),
        ("origin\n1\n\n\u2014 origin\n", "malformed"),
        ("origin\n1\n\n\u2014 origin " + GOOD_BLOB + " extra\n", "malformed"),
        ("origin\n1\n\n" + sig_line("origin", "!!!!"), "malformed"),
        ("origin\n1\n\n" + sig_line("origin", GOOD_BLOB.rstrip("=")), "not valid base64"),
        ("origin\n1\n\n" + sig_line("origin", "AQID=BAU"), "malformed"),
        ("origin\n1\n\n" + sig_line("origin", "AQIDBAX="), "not canonical"),
        ("origin\n1\n\n" + sig_line("origin", b64(b"\x01\x02\x03\x04")), "too short"),
        ("origin\n1\n\n" + sig_line("ori+gin", GOOD_BLOB), "invalid key name"),
        ("origin\n1\n\n" + sig_line("ori\u00a0gin", GOOD_BLOB), "invalid key name"),
        ("origin\n1\n\n" + sig_line("ori\x00gin", GOOD_BLOB), "invalid key name"),
    ],
)
def test_signed_note_rejects_malformed(text: str, message: str) -> None:
    with pytest.raises(E, match=message) as info:
        SignedNote.from_text(text)
    assert info.value.code == "CHECKPOINT_INVALID"


def test_signed_note_bounds() -> None:
    many = GOOD_NOTE + sig_line("w", GOOD_BLOB) * 100  # 101 lines in all
    with pytest.raises(E, match="too many signature lines"):
        SignedNote.from_text(many)
    SignedNote.from_text(GOOD_NOTE + sig_line("w", GOOD_BLOB) * 99)  # 100 is fine
    big = "x" * MAX_NOTE_BYTES + "\n\n" + sig_line("origin", GOOD_BLOB)
    with pytest.raises(E, match="too large"):
        SignedNote.from_text(big)
    # Fewer characters than the limit, more UTF-8 bytes.
    wide = "\u00e9" * (MAX_NOTE_BYTES // 2 + 1) + "\n\n" + sig_line("origin", GOOD_BLOB)
    with pytest.raises(E, match="too large"):
        SignedNote.from_text(wide)


def test_signed_note_rejects_non_text() -> None:
    with pytest.raises(E, match="must be a string"):
        SignedNote.from_text(GOOD_NOTE.encode())
    with pytest.raises(E, match="UTF-8"):
        SignedNote.from_text("orig\ud800in\n\n" + sig_line("origin", GOOD_BLOB))


# -- Checkpoint ------------------------------------------------------------------------------


def test_checkpoint_parses_and_round_trips() -> None:
    body = f"rekor.example - 42\n123\n{b64(ROOT)}\nTimestamp: 1689177396617352539\n"
    cp = Checkpoint.from_body(body)
    assert cp == Checkpoint("rekor.example - 42", 123, ROOT, ("Timestamp: 1689177396617352539",))
    assert cp.to_body() == body
    assert Checkpoint.from_body("o\n0\n" + b64(ROOT) + "\n").size == 0
    assert Checkpoint.from_body(f"o\n{2**63 - 1}\n{b64(ROOT)}\n").size == 2**63 - 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # A checkpoint whose origin line was dropped starts with its size.
        (f"736\n{b64(ROOT)}\n", "too few lines"),
        (f"736\n{b64(ROOT)}\next\n", "origin line is missing"),
        (f"\n736\n{b64(ROOT)}\n", "empty line"),
        (f" origin\n1\n{b64(ROOT)}\n", "leading or trailing spaces"),
        (f"origin \n1\n{b64(ROOT)}\n", "leading or trailing spaces"),
        (f"origin\n{b64(ROOT)}\n", "too few lines"),
        (f"origin\n01\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n-1\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n+1\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n1.0\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n 1\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n\u0661\n{b64(ROOT)}\n", "tree size"),  # an Arabic-Indic digit one
        (f"origin\n{2**63}\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n{'9' * 5000}\n{b64(ROOT)}\n", "tree size"),
        (f"origin\n1\n{b64(ROOT[:31])}\n", "not 32 bytes"),
        (f"origin\n1\n{b64(ROOT + b'x')}\n", "not 32 bytes"),
        (f"origin\n1\n{b64(ROOT).rstrip('=')}\n", "not valid base64"),
        ("origin\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n",
         "not valid base64"),
        (f"origin\n1\n{ROOT.hex()}\n", "not 32 bytes"),
        (f"origin\n1\n{b64(ROOT)}", "does not end with a newline"),
        ("", "empty"),
    ],
)
def test_checkpoint_rejects_malformed(body: str, message: str) -> None:
    with pytest.raises(E, match=message):
        Checkpoint.from_body(body)


def test_checkpoint_rejects_non_text_and_huge_bodies() -> None:
    with pytest.raises(E, match="must be a string"):
        Checkpoint.from_body(b"o\n1\n")
    with pytest.raises(E, match="too large"):
        Checkpoint.from_body("o\n1\n" + "x\n" * MAX_NOTE_BYTES)


# -- note key ids and signing ----------------------------------------------------------------


def _public_good_logs() -> list[tuple[str, object]]:
    out = []
    for path in sorted(PUBLIC_GOOD.glob("*/trusted_root.json")):
        root = TrustedRoot.from_json(path.read_text())
        out += [(path.parent.name, log) for log in root.tlogs]
    return out


def test_note_key_id_matches_public_good_log_ids() -> None:
    logs = _public_good_logs()
    ed25519_logs = [log for _, log in logs if log.key.family == "ed25519"]
    ecdsa_logs = [log for _, log in logs if log.key.family == "ecdsa"]
    assert ed25519_logs and ecdsa_logs
    for log in ed25519_logs:
        # SPEC: for Rekor v2 logs the trusted-root logId is the full note key id.
        assert note_key_id(log.origin_name, log.key) == log.log_id, log.base_url
    for log in ecdsa_logs:
        # ECDSA: SHA-256(SPKI), the name does not enter.
        assert note_key_id(log.origin_name, log.key) == log.log_id == log.key.key_id
        assert note_key_id("anything", log.key) == log.log_id


def test_note_key_id_formulas() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    raw = ed.public_key().public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw)
    want = hashlib.sha256(b"log.example\n\x01" + raw).digest()
    assert note_key_id("log.example", ed) == want
    assert note_key_id("log.example", ed.public_key()) == want
    assert note_key_id("log.example", PublicKey.from_key(ed.public_key())) == want
    assert note_key_id("other.example", ed) != want

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert note_key_id("log.example", rsa_key) == hashlib.sha256(
        b"log.example\n\xffPKIX-RSA-PKCS#1v1.5" + spki).digest()

    with pytest.raises(KeyMalformedError):
        note_key_id("log.example", x25519.X25519PrivateKey.generate().public_key())


def test_sign_note_output_parses(any_log: FakeLog) -> None:
    body = checkpoint_body(any_log.origin, 5, ROOT)
    text = sign_note(body, any_log.name, any_log.private_key)
    note = SignedNote.from_text(text)
    assert note.body == body
    (sig,) = note.signatures
    assert sig.name == any_log.name
    assert sig.key_hint == any_log.key_id[:4] == note_key_id(any_log.name, any_log.log.key)[:4]


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("o\n1\n", "bad name"),
        ("o\n1\n", "bad+name"),
        ("o\n1\n", ""),
        ("o\n1", "name"),
        ("o\n\n1\n", "name"),
        ("", "name"),
        ("o\t\n1\n", "name"),
    ],
)
def test_sign_note_rejects_bad_input(body: str, name: str) -> None:
    with pytest.raises(UsageError):
        sign_note(body, name, ed25519.Ed25519PrivateKey.generate())


def test_sign_note_rejects_unsupported_key() -> None:
    with pytest.raises(KeyMalformedError):
        sign_note("o\n1\n", "name", x25519.X25519PrivateKey.generate())


# -- verify_checkpoint with fabricated logs ---------------------------------------------------


def test_verify_happy_paths(v1: FakeLog, v2: FakeLog) -> None:
    cp = verify_checkpoint(v1.checkpoint(10, ROOT), v1.log)
    assert cp == Checkpoint(f"{v1.name} - {v1.tree_id}", 10, ROOT, ())
    cp = verify_checkpoint(v2.checkpoint(10, ROOT), v2.log)
    assert cp == Checkpoint(v2.name, 10, ROOT, ())
    # Rekor v1 "Timestamp:" extension lines are kept.
    cp = verify_checkpoint(v1.checkpoint(10, ROOT, extensions=("Timestamp: 1",)), v1.log)
    assert cp.extensions == ("Timestamp: 1",)


def test_verify_other_key_types() -> None:
    # rekor-tiles with an ECDSA key writes the bare host as origin.
    bare = make_ecdsa_log(tree_id=None)
    verify_checkpoint(bare.checkpoint(3, ROOT), bare.log)
    # A P-384 v1 log still signs SHA-256 of the note, as Rekor does.
    p384 = make_ecdsa_log(curve=ec.SECP384R1())
    verify_checkpoint(p384.checkpoint(3, ROOT), p384.log)
    # RSA PKCS#1 v1.5 note keys.
    rsa_log = make_rsa_log()
    verify_checkpoint(rsa_log.checkpoint(3, ROOT), rsa_log.log)
    tampered = replace_once(rsa_log.checkpoint(3, ROOT), "\n3\n", "\n4\n")
    with pytest.raises(E, match="does not verify"):
        verify_checkpoint(tampered, rsa_log.log)


def test_verify_origin_with_port() -> None:
    # Conformance intoto-with-custom-trust-root: baseUrl http://localhost:8000, origin and
    # key name "localhost:8000".
    log = make_ecdsa_log("http://localhost:8000", tree_id=124190645164477)
    body = checkpoint_body("localhost:8000 - 124190645164477", 1, ROOT)
    verify_checkpoint(sign_note(body, "localhost:8000", log.private_key), log.log)
    verify_checkpoint(log.checkpoint(1, ROOT), log.log)  # plain host spelling
    # B3: a private Rekor v1 writes its own host name (rekor_server.hostname, by default
    # the machine's name) in the origin and the signature line; its key binds it to the log.
    body = checkpoint_body("localhost:9000 - 1", 1, ROOT)
    verify_checkpoint(sign_note(body, "localhost:9000", log.private_key), log.log)
    ed = make_ed25519_log("http://localhost:7080")
    body = checkpoint_body("localhost:7080", 1, ROOT)
    verify_checkpoint(sign_note(body, "localhost:7080", ed.private_key), ed.log)


def test_verify_signer_name_must_match_the_origin(v1: FakeLog) -> None:
    # The origin names the log, but the only signature line is under another name: for
    # ECDSA the hint does not depend on the name, so only the name check catches it.
    body = checkpoint_body(v1.origin, 1, ROOT)
    text = sign_note(body, "other.example", v1.private_key)
    with pytest.raises(E, match="no signature line"):
        verify_checkpoint(text, v1.log)


@pytest.mark.parametrize(
    "origin",
    [
        "rekor.fake.test - ",
        "rekor.fake.test - 1a",
        "rekor.fake.test -1",
        "rekor.fake.test - -1",
        "other.example",
    ],
)
def test_verify_rejects_wrong_v1_origin(v1: FakeLog, origin: str) -> None:
    envelope = v1.checkpoint(10, ROOT, origin=origin)
    with pytest.raises(E, match="origin") as info:
        verify_checkpoint(envelope, v1.log)
    assert info.value.actual == origin


@pytest.mark.parametrize(
    "origin",
    [
        "other.example - 1",
        "rekor.fake.test.evil - 1",
        "evil.rekor.fake.test - 1",
        "rekor.fake.test - 1 - 2",
        "Rekor.fake.test - 1",
        "rekor.fake.test/ - 1",
        "https://rekor.fake.test - 1",
    ],
)
def test_verify_rejects_a_v1_origin_whose_host_is_not_the_signers(v1: FakeLog, origin: str) -> None:
    # Signed under the log's URL host while the origin names another host: Rekor v1 signs
    # under the host its origin names, so no signature line is the log's.
    envelope = v1.checkpoint(10, ROOT, origin=origin)
    with pytest.raises(E, match="no signature line"):
        verify_checkpoint(envelope, v1.log)


@pytest.mark.parametrize("host", ["rekor-5d8f7b9c4-x2kqz", "rekor.internal.example",
                                  "10.0.3.7"])
def test_verify_private_v1_origin_with_its_own_host_name(v1: FakeLog, host: str) -> None:
    # B3. SPEC: rekor pkg/util/checkpoint.go: origin "<rekor_server.hostname> - <tree id>",
    # signed under that host name; sigstore-go checks such a checkpoint with the log key.
    body = checkpoint_body(f"{host} - 2605736670972794746", 10, ROOT)
    checkpoint = verify_checkpoint(sign_note(body, host, v1.private_key), v1.log)
    assert checkpoint.size == 10
    impostor = make_ecdsa_log(v1.log.base_url, tree_id=1)
    with pytest.raises(E, match="signature"):
        verify_checkpoint(sign_note(body, host, impostor.private_key), v1.log)


@pytest.mark.parametrize(
    "origin",
    [
        "log2099-2.rekor.fake.test",
        "log2099-1.rekor.fake.test - 1",  # Rekor v1 form: not for an Ed25519 (v2) log
        "log2099-1.rekor.fake.test/",
        "https://log2099-1.rekor.fake.test",
        "log2099-1.rekor.fake.test extra",
    ],
)
def test_verify_rejects_wrong_v2_origin(v2: FakeLog, origin: str) -> None:
    with pytest.raises(E, match="origin does not name the log"):
        verify_checkpoint(v2.checkpoint(10, ROOT, origin=origin), v2.log)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n10\n", "\n11\n"),  # size
        ("\n10\n", "\n010\n"),  # size, non-canonical: a parse error first
        (b64(ROOT), b64(hashlib.sha256(b"other").digest())),  # root
    ],
)
def test_verify_rejects_mutated_text(any_log: FakeLog, old: str, new: str) -> None:
    envelope = replace_once(any_log.checkpoint(10, ROOT), old, new)
    with pytest.raises(E):
        verify_checkpoint(envelope, any_log.log)


def test_verify_rejects_mutated_size_and_root_by_signature(any_log: FakeLog) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    for old, new in (("\n10\n", "\n11\n"),
                     (b64(ROOT), b64(hashlib.sha256(b"other").digest()))):
        with pytest.raises(E, match="signature does not verify"):
            verify_checkpoint(replace_once(envelope, old, new), any_log.log)
    # An added extension line is covered by the signature too.
    added = replace_once(envelope, "\n\n", "\nTimestamp: 1\n\n")
    with pytest.raises(E, match="signature does not verify"):
        verify_checkpoint(added, any_log.log)


def _only_signature(envelope: str) -> NoteSignature:
    (sig,) = SignedNote.from_text(envelope).signatures
    return sig


def _with_signature(envelope: str, sig: NoteSignature) -> str:
    return envelope.partition("\n\n")[0] + "\n\n" + sig.to_line()


def test_verify_rejects_flipped_signature_bytes(any_log: FakeLog) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    sig = _only_signature(envelope)
    for position in (0, len(sig.signature) // 2, len(sig.signature) - 1):
        bad = bytearray(sig.signature)
        bad[position] ^= 0x01
        forged = _with_signature(envelope, NoteSignature(sig.name, sig.key_hint, bytes(bad)))
        with pytest.raises(E, match="is not signed by the log"):
            verify_checkpoint(forged, any_log.log)
    # Truncated or garbage signatures are refused, not crashed on.
    for junk in (b"\x00", sig.signature[:-1], b"\x30\x03\x02\x01\x01", sig.signature + b"\x00"):
        forged = _with_signature(envelope, NoteSignature(sig.name, sig.key_hint, junk))
        with pytest.raises(E, match="is not signed by the log"):
            verify_checkpoint(forged, any_log.log)


def test_verify_rejects_wrong_key_hint(any_log: FakeLog) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    sig = _only_signature(envelope)
    hint = bytes([sig.key_hint[0] ^ 0x80]) + sig.key_hint[1:]
    forged = _with_signature(envelope, NoteSignature(sig.name, hint, sig.signature))
    with pytest.raises(E, match="no signature line with the log's name and key hint"):
        verify_checkpoint(forged, any_log.log)


def test_verify_rejects_wrong_signer_name(any_log: FakeLog) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    sig = _only_signature(envelope)
    forged = _with_signature(envelope, NoteSignature("x" + sig.name, sig.key_hint,
                                                     sig.signature))
    with pytest.raises(E, match="no signature line"):
        verify_checkpoint(forged, any_log.log)


def test_verify_rejects_wrong_key(any_log: FakeLog) -> None:
    base_url = any_log.log.base_url
    if any_log.log.key.family == "ed25519":
        impostor = make_ed25519_log(base_url)
    else:
        impostor = make_ecdsa_log(base_url, tree_id=any_log.tree_id)
    envelope = impostor.checkpoint(10, ROOT)
    with pytest.raises(E, match="is not signed by the log"):
        verify_checkpoint(envelope, any_log.log)
    # Even when the impostor copies the real key hint, the signature does not verify.
    sig = _only_signature(envelope)
    forged = _with_signature(envelope, NoteSignature(sig.name, any_log.key_id[:4],
                                                     sig.signature))
    with pytest.raises(E, match="signature does not verify"):
        verify_checkpoint(forged, any_log.log)


@pytest.mark.parametrize("first", [True, False])
def test_verify_ignores_witness_cosignatures(any_log: FakeLog, first: bool) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    cosigned = add_cosignature(envelope, "witness.example/w1", make_witness_key(), first=first)
    cosigned = add_cosignature(cosigned, "witness.example/w2", make_witness_key(), first=first)
    note = SignedNote.from_text(cosigned)
    assert len(note.signatures) == 3
    assert verify_checkpoint(cosigned, any_log.log).size == 10


def test_verify_needs_the_logs_own_signature(any_log: FakeLog) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    cosigned = add_cosignature(envelope, "witness.example", make_witness_key())
    body, _, block = cosigned.partition("\n\n")
    only_witness = body + "\n\n" + block.split("\n", 1)[1]
    assert len(SignedNote.from_text(only_witness).signatures) == 1
    with pytest.raises(E, match="not signed by the log"):
        verify_checkpoint(only_witness, any_log.log)


def test_verify_one_good_log_signature_is_enough(any_log: FakeLog) -> None:
    envelope = any_log.checkpoint(10, ROOT)
    sig = _only_signature(envelope)
    # A bogus line with the log's own name and hint, before the genuine one.
    bogus = add_signature_line(envelope, sig.name, sig.key_hint, b"\x00" * 64, first=True)
    verify_checkpoint(bogus, any_log.log)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("\n\n", "\n"), "no blank line"),
        (lambda t: t.replace("\n\n", "\n\n\n"), "malformed"),
        (lambda t: t + "\n", "more than one blank line"),
        (lambda t: t.partition("\n\n")[0] + "\n\n", "no signature lines"),
        (lambda t: t.replace("\u2014 ", "-- "), "malformed"),
        (lambda t: t[:-3] + "!" + t[-2:], "malformed"),
        (lambda t: t[:-2] + "\n", "base64"),
    ],
)
def test_verify_rejects_malformed_envelopes(any_log: FakeLog, mutate, message: str) -> None:
    with pytest.raises(E, match=message):
        verify_checkpoint(mutate(any_log.checkpoint(10, ROOT)), any_log.log)


def test_verify_rejects_non_string_envelope(v2: FakeLog) -> None:
    with pytest.raises(E):
        verify_checkpoint(v2.checkpoint(1, ROOT).encode(), v2.log)  # type: ignore[arg-type]
    with pytest.raises(E):
        verify_checkpoint(None, v2.log)  # type: ignore[arg-type]


# -- real checkpoints from the conformance sample ---------------------------------------------


def _production_root() -> TrustedRoot:
    return TrustedRoot.from_json((PUBLIC_GOOD / "production" / "trusted_root.json").read_text())


def _conformance_checkpoints() -> list[tuple[str, str, object]]:
    base = _conformance_dir()
    production = _production_root()
    out = []
    for case in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            bundle = json.loads((case / "bundle.sigstore.json").read_text())
        except (OSError, ValueError):
            continue
        root = production
        if (case / "trusted_root.json").exists():
            root = TrustedRoot.from_json((case / "trusted_root.json").read_text())
        for entry in bundle.get("verificationMaterial", {}).get("tlogEntries", []):
            envelope = entry.get("inclusionProof", {}).get("checkpoint", {}).get("envelope")
            if envelope is None:
                continue
            log = root.tlog_by_id(base64.b64decode(entry["logId"]["keyId"]))
            assert log is not None, case.name
            out.append((case.name, envelope, log))
    return out


CONFORMANCE = _conformance_checkpoints()
# Bundles whose *checkpoint* is bad; every other case fails (if at all) for another reason.
BAD_CHECKPOINTS = {"rekor2-checkpoint-missing-origin_fail"}


def test_conformance_sample_was_found() -> None:
    names = {name for name, _, _ in CONFORMANCE}
    assert {"happy-path-v0.3", "happy-path-v0.1", "rekor2-happy-path",
            "rekor2-checkpoint-cosigned", "intoto-with-custom-trust-root"} <= names
    assert BAD_CHECKPOINTS <= names


@pytest.mark.parametrize(("case", "envelope", "log"), CONFORMANCE,
                         ids=[c[0] for c in CONFORMANCE])
def test_conformance_checkpoints(case: str, envelope: str, log) -> None:
    if case in BAD_CHECKPOINTS:
        with pytest.raises(E):
            Checkpoint.from_body(SignedNote.from_text(envelope).body)
        with pytest.raises(E):
            verify_checkpoint(envelope, log)
        return
    cp = verify_checkpoint(envelope, log)
    # Oracle: sigstore-python's own parser reads the same values.
    sigstore_checkpoint = pytest.importorskip("sigstore._internal.rekor.checkpoint")
    theirs = sigstore_checkpoint.SignedCheckpoint.from_text(envelope).checkpoint
    assert (cp.origin, cp.size, cp.root_hash.hex(), list(cp.extensions)) == (
        theirs.origin, theirs.log_size, theirs.log_hash, theirs.other_content)
    # Any change to the signed text breaks the real log signature.
    tampered = replace_once(envelope, f"\n{cp.size}\n", f"\n{cp.size + 1}\n")
    with pytest.raises(E, match="does not verify"):
        verify_checkpoint(tampered, log)


def test_conformance_checkpoint_against_the_wrong_log() -> None:
    by_case = {name: (env, log) for name, env, log in CONFORMANCE}
    if "happy-path-v0.3" not in by_case or "rekor2-happy-path" not in by_case:
        pytest.skip("conformance sample not found")
    v1_env, v1_log = by_case["happy-path-v0.3"]
    v2_env, v2_log = by_case["rekor2-happy-path"]
    with pytest.raises(E, match="origin"):
        verify_checkpoint(v1_env, v2_log)
    with pytest.raises(E, match="origin"):
        verify_checkpoint(v2_env, v1_log)


# -- fuzz: any mutation either still verifies (only if unchanged) or is a CheckpointInvalidError


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzzed_envelopes_fail_cleanly(data: st.DataObject) -> None:
    log, envelope = FUZZ_CASES[data.draw(st.integers(0, 1), label="log")]
    position = data.draw(st.integers(0, len(envelope)), label="position")
    cut = data.draw(st.integers(0, 3), label="cut")
    insert = data.draw(st.text(alphabet="\n \u2014-+/=0aZ\t\x00\ud800", max_size=3),
                       label="insert")
    mutated = envelope[:position] + insert + envelope[position + cut:]
    try:
        verify_checkpoint(mutated, log.log)
    except E:
        return
    # Accepted: then the signed text must be exactly the original one.
    assert SignedNote.from_text(mutated).body == SignedNote.from_text(envelope).body


# Signed once: ECDSA signatures vary in length, and hypothesis needs stable inputs.
FUZZ_CASES = tuple((log, log.checkpoint(10, ROOT)) for log in (make_ecdsa_log(),
                                                               make_ed25519_log()))
