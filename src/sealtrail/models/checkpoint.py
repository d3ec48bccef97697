"""Signed notes and transparency-log checkpoints (pure parsing and signing helpers).

SPEC: C2SP signed-note (https://c2sp.org/signed-note) and C2SP tlog-checkpoint
(https://c2sp.org/tlog-checkpoint). A signed note is::

    <text, one or more lines, each ending in "\\n">
    <blank line>
    — <key name> <base64(4-byte key hint || signature)>
    ...

and a checkpoint is a note whose text is ``origin\\nsize\\nbase64(root)\\n[extension\\n...]``.
Rekor v1 writes the origin as ``<host> - <tree id>`` and adds a ``Timestamp:`` extension
line in older checkpoints; Rekor v2 (rekor-tiles) writes the bare host.

Everything here parses untrusted text strictly and bounds it; every failure is a
:class:`~sealtrail.errors.CheckpointInvalidError`. ``note_key_id`` and ``sign_note`` are
the signing side, for the log service and for test fakes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import CheckpointInvalidError, KeyMalformedError, UsageError

__all__ = [
    "Checkpoint",
    "MAX_NOTE_BYTES",
    "MAX_NOTE_SIGNATURES",
    "NoteSignature",
    "SignedNote",
    "note_key_id",
    "sign_note",
]

E = CheckpointInvalidError

# Bounds on untrusted notes. Real checkpoints are a few hundred bytes with a handful of
# (co)signatures; SPEC: Go's golang.org/x/mod/sumdb/note also caps a note at 100 signatures.
MAX_NOTE_BYTES = 1024 * 1024
MAX_NOTE_SIGNATURES = 100

_SEPARATOR = "\n\n"
# SPEC: C2SP signed-note: a signature line is an em dash (U+2014), a space, the key name,
# a space, the base64 of key hint || signature, and a newline.
_SIG_LINE_RE = re.compile(r"\A\u2014 ([^ ]+) ([A-Za-z0-9+/]+={0,2})\Z")
_STD_B64_RE = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")
# Decimal without leading zeros; at most 19 digits (int64).
_SIZE_RE = re.compile(r"\A(0|[1-9][0-9]{0,18})\Z")
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_MAX_INT64 = 2**63 - 1
_HINT_SIZE = 4
_ROOT_SIZE = 32

# SPEC: C2SP signed-note signature types (the byte after "name\n" in a key id).
_TYPE_ED25519 = b"\x01"
_TYPE_OTHER = b"\xff"
# SPEC: rekor-tiles pkg/note: the identifier hashed into an RSA note key id.
_RSA_ALGORITHM_ID = b"PKIX-RSA-PKCS#1v1.5"


def _strict_b64(value: str, what: str) -> bytes:
    """Decode standard, padded, canonical base64 (what Go's StdEncoding writes)."""
    if not _STD_B64_RE.match(value) or len(value) % 4:
        raise E(f"{what} is not valid base64", actual=value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise E(f"{what} is not valid base64", actual=value) from exc
    # Reject non-canonical encodings (stray bits in the last character): one value, one
    # spelling.
    if base64.b64encode(raw).decode("ascii") != value:
        raise E(f"{what} is not canonical base64", actual=value)
    return raw


def _is_valid_key_name(name: str) -> bool:
    # SPEC: C2SP signed-note: a key name is non-empty and contains no Unicode spaces and
    # no plus sign (U+002B). Control characters are refused as well.
    return (bool(name) and "+" not in name and not any(c.isspace() for c in name)
            and not _CONTROL_RE.search(name))


def _check_text(text: str, what: str) -> None:
    """Common rules for note text: non-empty lines, each ending in a newline."""
    if not text:
        raise E(f"{what} is empty")
    if not text.endswith("\n"):
        raise E(f"{what} does not end with a newline")
    if text.startswith("\n") or _SEPARATOR in text:
        raise E(f"{what} contains an empty line")
    # No legitimate checkpoint carries control characters (tabs, CR, NUL...); they would
    # only make the signed text read differently from what a person sees.
    match = _CONTROL_RE.search(text)
    if match:
        raise E(f"{what} contains a control character", actual=repr(match.group()))


class NoteSignature(NamedTuple):
    """One signature line of a signed note."""

    name: str
    key_hint: bytes  # the first 4 bytes of the signer's key id
    signature: bytes

    def to_line(self) -> str:
        """The line as it appears in a note, newline included."""
        blob = base64.b64encode(self.key_hint + self.signature).decode("ascii")
        return f"\u2014 {self.name} {blob}\n"


class SignedNote(NamedTuple):
    """A C2SP signed note: the signed ``body`` text and its signature lines."""

    body: str  # the signed text, up to and including the newline before the blank line
    signatures: tuple[NoteSignature, ...]

    @classmethod
    def from_text(cls, text: Any) -> "SignedNote":
        """Parse a signed note strictly.

        Raises :class:`~sealtrail.errors.CheckpointInvalidError` if the note is too large,
        does not have exactly one blank line, has no signature line, or any signature line
        is malformed. Signature lines from unknown signers are kept (and later ignored).
        """
        if not isinstance(text, str):
            raise E("checkpoint must be a string", actual=type(text).__name__)
        # Bound before any other work: characters first (cheap), then encoded bytes.
        if len(text) > MAX_NOTE_BYTES:
            raise E("checkpoint is too large", actual=f"{len(text)} characters",
                    expected=f"<= {MAX_NOTE_BYTES} bytes")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise E("checkpoint is not valid UTF-8 text") from exc
        if size > MAX_NOTE_BYTES:
            raise E("checkpoint is too large", actual=f"{size} bytes",
                    expected=f"<= {MAX_NOTE_BYTES} bytes")

        # SPEC: C2SP signed-note: the text and the signatures are separated by one blank
        # line; the text itself has no blank lines, so there is exactly one "\n\n".
        separators = text.count(_SEPARATOR)
        if separators == 0:
            raise E("checkpoint has no blank line separating text and signatures")
        if separators > 1:
            raise E("checkpoint has more than one blank line", actual=separators, expected=1)
        split = text.index(_SEPARATOR)
        body, block = text[: split + 1], text[split + len(_SEPARATOR):]
        _check_text(body, "checkpoint text")

        if not block:
            raise E("checkpoint has no signature lines")
        if not block.endswith("\n"):
            raise E("checkpoint signature block does not end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_NOTE_SIGNATURES:
            raise E("checkpoint has too many signature lines", actual=len(lines),
                    expected=f"<= {MAX_NOTE_SIGNATURES}")
        signatures = tuple(_parse_signature_line(line, i + 1) for i, line in enumerate(lines))
        return cls(body, signatures)

    def to_text(self) -> str:
        """Serialise back to the note text."""
        return self.body + "\n" + "".join(sig.to_line() for sig in self.signatures)


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    what = f"checkpoint signature line {number}"
    match = _SIG_LINE_RE.match(line)
    if not match:
        raise E(f"{what} is malformed", actual=line,
                expected="\u2014 <name> <base64 signature>")
    name, blob = match.groups()
    if not _is_valid_key_name(name):
        raise E(f"{what} has an invalid key name", actual=name)
    raw = _strict_b64(blob, f"{what} signature")
    # SPEC: C2SP signed-note: the decoded value is a 4-byte key id followed by a
    # non-empty signature.
    if len(raw) <= _HINT_SIZE:
        raise E(f"{what} signature is too short", actual=f"{len(raw)} bytes",
                expected=f"> {_HINT_SIZE} bytes")
    return NoteSignature(name, raw[:_HINT_SIZE], raw[_HINT_SIZE:])


class Checkpoint(NamedTuple):
    """The text of a C2SP tlog-checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: Any) -> "Checkpoint":
        """Parse checkpoint text (a signed note's body).

        Raises :class:`~sealtrail.errors.CheckpointInvalidError` if a line is missing or
        malformed: the origin must be non-empty and not a number (a checkpoint whose
        origin line was dropped starts with its size), the size a canonical decimal
        int64 and the root the base64 of exactly 32 bytes.
        """
        if not isinstance(body, str):
            raise E("checkpoint text must be a string", actual=type(body).__name__)
        if len(body) > MAX_NOTE_BYTES:
            raise E("checkpoint text is too large", actual=f"{len(body)} characters",
                    expected=f"<= {MAX_NOTE_BYTES}")
        _check_text(body, "checkpoint text")
        lines = body[:-1].split("\n")
        # SPEC: C2SP tlog-checkpoint: origin, size and root hash are the first three lines;
        # any further lines are extensions.
        if len(lines) < 3:
            raise E("checkpoint text has too few lines", actual=len(lines),
                    expected=">= 3 (origin, size, root hash)")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if origin != origin.strip():
            raise E("checkpoint origin has leading or trailing spaces", actual=origin)
        if origin.isdigit():
            raise E("checkpoint origin line is missing (the first line is a number)",
                    actual=origin, expected="the log's origin")
        # SPEC: C2SP tlog-checkpoint: "the tree size as an ASCII decimal number"; leading
        # zeros would give one size two spellings.
        if not _SIZE_RE.match(size_text) or int(size_text) > _MAX_INT64:
            raise E("checkpoint tree size is not a canonical decimal number",
                    actual=size_text)
        root = _strict_b64(root_text, "checkpoint root hash")
        if len(root) != _ROOT_SIZE:
            raise E("checkpoint root hash is not 32 bytes", actual=f"{len(root)} bytes",
                    expected=f"{_ROOT_SIZE} bytes")
        return cls(origin, int(size_text), root, tuple(lines[3:]))

    def to_body(self) -> str:
        """The checkpoint text, ready to be signed with :func:`sign_note`."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii"),
                 *self.extensions]
        return "".join(line + "\n" for line in lines)


# -- signing side ---------------------------------------------------------------------------

# The key types of signed notes (other types are refused at run time).
_NotePrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_NotePublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def _public_key(key: PublicKey | _NotePublicKey | _NotePrivateKey) -> _NotePublicKey:
    """Accept a sealtrail PublicKey, a cryptography public key or a private key."""
    if isinstance(key, PublicKey):
        return key.key
    if isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey,
                        rsa.RSAPrivateKey)):
        return key.public_key()
    return key


def note_key_id(name: str, key: PublicKey | _NotePublicKey | _NotePrivateKey) -> bytes:
    """The full 32-byte signed-note key id of ``key`` under the key name ``name``.

    The first 4 bytes are the key hint written in signature lines. For Rekor v2 logs the
    full value is the trusted root's ``logId``; for ECDSA keys it is SHA-256(SPKI), the
    Rekor v1 log id.

    ``key`` may be a :class:`~sealtrail.crypto.keys.PublicKey`, a ``cryptography``
    public key or a private key. Raises :class:`~sealtrail.errors.KeyMalformedError` for
    an unsupported key type.
    """
    public = _public_key(key)
    prefix = name.encode("utf-8") + b"\n"
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        # SPEC: C2SP signed-note: Ed25519 key id = SHA-256(name || 0x0A || 0x01 || key).
        return hashlib.sha256(prefix + _TYPE_ED25519 + raw).digest()
    if isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        spki = public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        if isinstance(public, ec.EllipticCurvePublicKey):
            # SPEC: rekor pkg/util/signed_note.go and rekor-tiles pkg/note: ECDSA key id =
            # SHA-256(SPKI DER), without the name (the Rekor v1 log id).
            return hashlib.sha256(spki).digest()
        # SPEC: rekor-tiles pkg/note: RSA key id =
        # SHA-256(name || 0x0A || 0xFF || "PKIX-RSA-PKCS#1v1.5" || SPKI DER).
        return hashlib.sha256(prefix + _TYPE_OTHER + _RSA_ALGORITHM_ID + spki).digest()
    raise KeyMalformedError("unsupported key type for a signed note",
                            actual=type(public).__name__,
                            expected="Ed25519, ECDSA or RSA")


def sign_note(body: str, name: str, private_key: _NotePrivateKey) -> str:
    """Sign ``body`` as key ``name`` and return the full signed-note text.

    Ed25519 signs the body itself; ECDSA signs SHA-256(body) (DER signature) and RSA uses
    PKCS#1 v1.5 with SHA-256, as Rekor does. Raises :class:`~sealtrail.errors.UsageError`
    for an invalid body or key name and :class:`~sealtrail.errors.KeyMalformedError` for an
    unsupported key.
    """
    if not isinstance(name, str) or not _is_valid_key_name(name):
        raise UsageError("invalid signed-note key name", actual=name)
    try:
        _check_text(body, "note text")
    except CheckpointInvalidError as exc:
        raise UsageError(exc.message, actual=exc.actual) from exc
    data = body.encode("utf-8")
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(data)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        signature = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise KeyMalformedError("unsupported private key type for a signed note",
                                actual=type(private_key).__name__,
                                expected="Ed25519, ECDSA or RSA")
    hint = note_key_id(name, private_key)[:_HINT_SIZE]
    return SignedNote(body, (NoteSignature(name, hint, signature),)).to_text()
