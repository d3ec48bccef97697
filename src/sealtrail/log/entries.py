"""Turn Rekor entry *requests* into the canonical entry bodies a log records, checking them.

A client proposes an entry (``POST /api/v1/log/entries`` or ``POST /api/v2/log/entries``);
the log verifies every signature in it with the key or certificate it names, and only then
produces the canonicalized body that is hashed into the Merkle tree (RFC 6962 leaf) and
returned to clients, who compare it with their bundle. The bodies must be byte-for-byte what
real Rekor produces for the same request, since clients and verifiers (sigstore-python,
sigstore-go, sigstore-js and :mod:`sealtrail.models.rekor`) parse them.

Pure functions: no I/O, no clock. Every refusal is a :class:`LogEntryInvalidError`.

SPEC: sigstore-wire.md §3 (rekor pkg/types/{hashedrekord,dsse,intoto}; canonical body = RFC
8785 JCS of ``{"apiVersion","kind","spec"}``) and §4 (rekor-tiles hashedrekord 0.0.2 and the
deprecated dsse 0.0.2, protojson camelCase, JCS).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable, NamedTuple

import rfc8785
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from sealtrail._internal.encoding import b64decode, hexdecode
from sealtrail._internal.memo import BoundedMemo
from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import Error, LogEntryInvalidError
from sealtrail.models.certificate import FulcioIdentity

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_PEM_BYTES",
    "MAX_SIGNATURES",
    "MAX_VERIFIERS",
    "SUPPORTED_V1",
    "SUPPORTED_V2",
    "CanonicalEntry",
    "IssuerCheck",
    "canonicalize_v1",
    "canonicalize_v2",
]

E = LogEntryInvalidError

# -- limits ---------------------------------------------------------------------------------
# Legitimate requests are a few dozen JSON nodes, 5-6 levels deep; the only large field is a
# DSSE payload. These bounds keep a hostile request from costing more than parsing it did.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_SIGNATURES = 16
MAX_VERIFIERS = 16
MAX_PEM_BYTES = 64 * 1024
MAX_DER_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 4096  # RSA-8192 PKCS#1 v1.5 is 1024 bytes; ECDSA P-521 DER ~139.
MAX_DIGEST_BYTES = 64
MAX_SHORT_TEXT = 1024  # payloadType, keyid, kind, apiVersion, algorithm names
MAX_DEPTH = 16
MAX_NODES = 10_000
# Total characters in all strings: a 16 MiB payload is base64-encoded twice in intoto 0.0.2.
MAX_TEXT_CHARS = 48 * 1024 * 1024
# The engine's search index bounds (sealtrail.log.config MAX_SEARCH_KEYS and
# MAX_SEARCH_VALUE_CHARS): keys past them are not indexed rather than the entry refused.
MAX_SEARCH_KEYS = 32
MAX_SEARCH_VALUE_CHARS = 2048

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

SUPPORTED_V1 = ("hashedrekord 0.0.1", "dsse 0.0.1", "intoto 0.0.2")
SUPPORTED_V2 = ("hashedRekordRequestV002", "dsseRequestV002")

# Message of the last-resort wrapper; tests assert that fuzzing never reaches it.
_INTERNAL = "log entry request could not be processed (internal error)"


class CanonicalEntry(NamedTuple):
    """A checked log entry: its kind, version, canonical body and search-index keys.

    ``body`` is what the log records and hashes as the RFC 6962 leaf. ``search_keys`` are
    ``(type, value)`` pairs for the search index: ``("sha256"|"sha384"|"sha512", lowercase
    hex digest)``, ``("identity", certificate SAN)``, ``("issuer", OIDC issuer)`` and
    ``("key", hex SHA-256 of the verifying key's DER SPKI)``; no duplicates, at most
    MAX_SEARCH_KEYS: the entry's digests first, then its signers, then in-toto subjects.
    """

    kind: str
    api_version: str
    body: bytes
    search_keys: tuple[tuple[str, str], ...]


# -- generic JSON helpers -------------------------------------------------------------------
def _check_shape(value: Any, what: str) -> None:
    """Refuse values that are not plain JSON, nest too deep, or are too large.

    Iterative, and stops at the first bound crossed, so a hostile value costs at most
    MAX_NODES steps.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    chars = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise E(f"{what} has too many JSON values", expected=f"<= {MAX_NODES}")
        if depth > MAX_DEPTH:
            raise E(f"{what} nests too deeply", expected=f"<= {MAX_DEPTH} levels")
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise E(f"{what} has a non-string object key", actual=type(key).__name__)
                chars += len(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif item is None or isinstance(item, (bool, int, float)):
            pass
        else:
            raise E(f"{what} is not JSON", actual=type(item).__name__)
        if chars > MAX_TEXT_CHARS:
            raise E(f"{what} is too large", expected=f"<= {MAX_TEXT_CHARS} characters of text")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise E(f"{what} must be a JSON object", actual=_type_name(value))
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def _field(obj: dict[str, Any], what: str, camel: str, snake: str | None = None, *,
           required: bool = True) -> Any:
    """Read a field; protojson also accepts the proto (snake_case) name, but not both."""
    if snake is not None and snake != camel and snake in obj:
        if camel in obj:
            raise E(f"{what} gives both {camel!r} and {snake!r}")
        value = obj[snake]
    else:
        value = obj.get(camel)
    if value is None and required:
        raise E(f"{what}.{camel} is missing")
    return value


def _text(value: Any, what: str, *, max_chars: int = MAX_SHORT_TEXT, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise E(f"{what} must be a string", actual=_type_name(value))
    if len(value) > max_chars:
        raise E(f"{what} is too long", actual=f"{len(value)} characters",
                expected=f"<= {max_chars}")
    if not empty and not value:
        raise E(f"{what} must not be empty")
    return value


def _items(value: Any, what: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise E(f"{what} must be a JSON array", actual=_type_name(value))
    if not value:
        raise E(f"{what} must not be empty")
    if len(value) > max_items:
        raise E(f"{what} has too many items", actual=len(value), expected=f"<= {max_items}")
    return value


def _b64(value: Any, what: str, max_bytes: int, *, empty: bool = False) -> bytes:
    """Decode bounded base64 (standard or URL-safe, padding optional, like protojson)."""
    if isinstance(value, str) and len(value) > 4 * (max_bytes // 3 + 1):
        raise E(f"{what} is too large", actual=f"{len(value)} base64 characters",
                expected=f"<= {max_bytes} bytes")
    raw = b64decode(value, what, E)
    if len(raw) > max_bytes:
        raise E(f"{what} is too large", actual=f"{len(raw)} bytes", expected=f"<= {max_bytes}")
    if not empty and not raw:
        raise E(f"{what} must not be empty")
    return raw


def _b64s(data: bytes) -> str:
    """Standard padded base64, as Go's strfmt.Base64 and protojson write bytes."""
    return base64.b64encode(data).decode("ascii")


def _sha256_hex(value: Any, what: str) -> None:
    """Check a client-supplied ``{"algorithm":"sha256","value":hex}`` (then recomputed)."""
    obj = _obj(value, what)
    if obj.get("algorithm") != "sha256":
        raise E(f"{what}.algorithm is not supported", actual=obj.get("algorithm"),
                expected="sha256")
    text = obj.get("value")
    if not isinstance(text, str) or len(text) != 64:
        raise E(f"{what}.value must be 64 hex characters", actual=_type_name(text))
    hexdecode(text, f"{what}.value", E)


def _jcs(obj: Any) -> bytes:
    # SPEC: rekor types.CanonicalizeEntry and rekor-tiles both JCS-canonicalize (RFC 8785).
    return rfc8785.dumps(obj)


# -- keys, certificates and who they name ---------------------------------------------------
class _Signer(NamedTuple):
    """A verifier from a request: the key, its certificate if any, its canonical form, and
    the search keys it files an entry under (made by :func:`_signer`)."""

    key: PublicKey
    certificate: x509.Certificate | None
    canonical: Any  # v1: canonical PEM bytes; v2: the normalised Verifier JSON object
    sent: bytes  # v1: the PEM exactly as the client sent it (v2: empty)
    search_keys: tuple[tuple[str, str], ...]


def _signer(key: PublicKey, certificate: x509.Certificate | None, canonical: Any,
            sent: bytes = b"") -> _Signer:
    """A :class:`_Signer`, with its search keys: the identity and issuer its certificate
    names (when it names one usable SAN within the engine's bounds), then its key id."""
    keys: list[tuple[str, str]] = []
    if certificate is not None:
        try:
            identity: FulcioIdentity | None = FulcioIdentity.from_certificate(certificate)
        except (Error, ValueError):
            identity = None  # no single usable SAN: logged, but not findable by identity
        if identity is not None:
            if _Keys.fits(identity.san):
                keys.append(("identity", identity.san))
            if identity.issuer and _Keys.fits(identity.issuer):
                keys.append(("issuer", identity.issuer))
    keys.append(("key", key.key_id.hex()))
    return _Signer(key, certificate, canonical, sent, tuple(keys))


_BEGIN_CERT = b"-----BEGIN CERTIFICATE-----"


def _pem_signer(value: Any, what: str) -> _Signer:
    """A Rekor v1 ``publicKey``/``verifier``: base64 of a PEM certificate or public key.

    SPEC: rekor pkg/pki/x509 CanonicalValue re-encodes what it parsed (one certificate, or
    the PKIX public key) as PEM, which is what the canonical body stores.
    """
    pem = _b64(value, what, MAX_PEM_BYTES)
    if _BEGIN_CERT in pem:
        known = _PEM_CERTIFICATES.get(pem)
        if known is not None:
            return known
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise E(f"{what} is not a valid PEM certificate") from exc
        if len(certs) != 1:
            raise E(f"{what} must hold exactly one certificate", actual=len(certs), expected=1)
        cert = certs[0]
        key = _cert_key(cert, None, what)
        signer = _signer(key, cert, cert.public_bytes(serialization.Encoding.PEM), pem)
        _PEM_CERTIFICATES.put(pem, signer)
        return signer
    try:
        loaded = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise E(f"{what} is neither a PEM certificate nor a PEM public key") from exc
    key = PublicKey.from_key(loaded, None, E)
    return _signer(key, None, key.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), pem)


# A signing run logs many entries under one short-lived certificate: what a certificate
# parsed to (its key, and the identity and key id it is filed under) is kept by its exact
# bytes, so each entry after the first skips the X.509 work. Pure functions of those bytes;
# bounded against hostile input.
_MEMO_LIMIT = 256
# Rekor v2 signers by (DER, keyDetails); Rekor v1 signers by the PEM as sent.
_CERTIFICATES: BoundedMemo[tuple[bytes, str], _Signer] = BoundedMemo(_MEMO_LIMIT)
_PEM_CERTIFICATES: BoundedMemo[bytes, _Signer] = BoundedMemo(_MEMO_LIMIT)


def _der_signer(raw: bytes, details: str, what: str) -> _Signer:
    """The signer of a Rekor v2 ``x509Certificate`` verifier (memoised by its bytes)."""
    found = _CERTIFICATES.get((raw, details))
    if found is None:
        try:
            cert = x509.load_der_x509_certificate(raw)
        except ValueError as exc:
            raise E(f"{what}.rawBytes is not a DER certificate") from exc
        # SPEC: rekor-tiles stores the Verifier as sent; protojson re-encodes the bytes.
        canonical = {"keyDetails": details, "x509Certificate": {"rawBytes": _b64s(raw)}}
        found = _signer(_cert_key(cert, details, what), cert, canonical)
        _CERTIFICATES.put((raw, details), found)
    return found


def _cert_key(cert: x509.Certificate, details: str | None, what: str) -> PublicKey:
    try:
        loaded = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise E(f"{what}: the certificate's public key is not supported") from exc
    return PublicKey.from_key(loaded, details, E)


# SPEC: sigstore-wire.md §4 "Server checks": rekor-tiles' allowed keyDetails, with the hash
# each one prehashes with (hashlib name, protobuf HashAlgorithm name).
_V2_KEY_DETAILS: dict[str, tuple[str, str]] = {
    "PKIX_RSA_PKCS1V15_2048_SHA256": ("sha256", "SHA2_256"),
    "PKIX_RSA_PKCS1V15_3072_SHA256": ("sha256", "SHA2_256"),
    "PKIX_RSA_PKCS1V15_4096_SHA256": ("sha256", "SHA2_256"),
    "PKIX_ECDSA_P256_SHA_256": ("sha256", "SHA2_256"),
    "PKIX_ECDSA_P384_SHA_384": ("sha384", "SHA2_384"),
    "PKIX_ECDSA_P521_SHA_512": ("sha512", "SHA2_512"),
}
_V2_ALLOWED_TEXT = ", ".join(list(_V2_KEY_DETAILS) + ["PKIX_ED25519_PH"])


def _v2_signer(value: Any, what: str) -> tuple[_Signer, str, str]:
    """A Rekor v2 ``Verifier``; returns it with the (hashlib, protobuf) hash of its keyDetails."""
    obj = _obj(value, what)
    details = _field(obj, what, "keyDetails", "key_details")
    if not isinstance(details, str):
        raise E(f"{what}.keyDetails must be a PublicKeyDetails enum name",
                actual=_type_name(details), expected=_V2_ALLOWED_TEXT)
    if details == "PKIX_ED25519":
        # SPEC: rekor-tiles #927 removed pure Ed25519 from the allowed algorithms.
        raise E("pure Ed25519 is not accepted by Rekor v2 logs", actual=details,
                expected=_V2_ALLOWED_TEXT)
    if details == "PKIX_ED25519_PH":
        raise E("Ed25519ph signatures cannot be verified by this log (no Ed25519ph support "
                "in the crypto backend)", actual=details,
                expected=", ".join(_V2_KEY_DETAILS))
    if details not in _V2_KEY_DETAILS:
        raise E(f"{what}.keyDetails is not an allowed algorithm", actual=details,
                expected=_V2_ALLOWED_TEXT)
    hash_name, proto_hash = _V2_KEY_DETAILS[details]
    cert_json = _field(obj, what, "x509Certificate", "x509_certificate", required=False)
    key_json = _field(obj, what, "publicKey", "public_key", required=False)
    if (cert_json is None) == (key_json is None):
        raise E(f"{what} must have exactly one of x509Certificate or publicKey")
    if cert_json is not None:
        sub = f"{what}.x509Certificate"
        raw = _b64(_field(_obj(cert_json, sub), sub, "rawBytes", "raw_bytes"),
                   f"{sub}.rawBytes", MAX_DER_BYTES)
        return _der_signer(raw, details, sub), hash_name, proto_hash
    sub = f"{what}.publicKey"
    raw = _b64(_field(_obj(key_json, sub), sub, "rawBytes", "raw_bytes"), f"{sub}.rawBytes",
               MAX_DER_BYTES)
    key = PublicKey.from_spki_der(raw, details, E)
    canonical = {"keyDetails": details, "publicKey": {"rawBytes": _b64s(raw)}}
    return _signer(key, None, canonical), hash_name, proto_hash


class _Keys:
    """Ordered, duplicate-free search keys, within the engine's bounds.

    Order of priority: the entry's own digests, then its signers, then in-toto subject
    digests (which are the only unbounded source and are dropped first).
    """

    def __init__(self) -> None:
        self._digests: list[tuple[str, str]] = []
        self._signers: list[_Signer] = []
        self._subjects: list[tuple[str, str]] = []

    @staticmethod
    def fits(value: str) -> bool:
        """Whether ``value`` is within the engine's bounds for a search value."""
        return 1 <= len(value) <= MAX_SEARCH_VALUE_CHARS

    def add(self, kind: str, value: str) -> None:
        self._digests.append((kind, value))

    def signer(self, signer: _Signer) -> None:
        self._signers.append(signer)

    def subjects(self, payload_type: str, payload: bytes) -> None:
        """Index the subject digests of an in-toto statement payload, leniently."""
        if payload_type != INTOTO_PAYLOAD_TYPE:
            return
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return
        subjects = data.get("subject") if isinstance(data, dict) else None
        if not isinstance(subjects, list):
            return
        for subject in subjects[:MAX_SEARCH_KEYS]:
            digests = subject.get("digest") if isinstance(subject, dict) else None
            if not isinstance(digests, dict):
                continue
            for name, value in digests.items():
                name = name.lower()
                size = {"sha256": 32, "sha384": 48, "sha512": 64}.get(name)
                if size is None or not isinstance(value, str) or len(value) != 2 * size:
                    continue
                try:
                    bytes.fromhex(value)
                except ValueError:
                    continue
                self._subjects.append((name, value.lower()))

    def result(self, trusted: IssuerCheck | None = None) -> tuple[tuple[str, str], ...]:
        signers: list[tuple[str, str]] = []
        for signer in self._signers:
            keys = signer.search_keys
            if trusted is not None and signer.certificate is not None \
                    and not trusted(signer.certificate):
                # Whoever made this certificate, it was not the CA the log serves with: the
                # names in it are claims nobody checked, so the entry is not filed under them
                # (it stays findable by digest and by key).
                keys = tuple(k for k in keys if k[0] not in _CERTIFIED_KINDS)
            signers.extend(keys)
        ordered = dict.fromkeys(self._digests + signers + self._subjects)
        return tuple(ordered)[:MAX_SEARCH_KEYS]


# Search keys taken from a certificate's contents, which only its issuer vouches for.
_CERTIFIED_KINDS = ("identity", "issuer")
# Whether a certificate was issued by a CA the log trusts to have checked the identity in it.
IssuerCheck = Callable[[x509.Certificate], bool]


# -- DSSE -----------------------------------------------------------------------------------
def _pae(payload_type: str, payload: bytes) -> bytes:
    """SPEC: DSSE v1 protocol.md, PAE = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


class _Envelope(NamedTuple):
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[bytes, str], ...]  # (signature, keyid)


def _envelope(value: Any, what: str) -> _Envelope:
    """A DSSE envelope object: payloadType, payload (base64), signatures[{sig, keyid?}]."""
    obj = _obj(value, what)
    payload_type = _text(_field(obj, what, "payloadType", "payload_type"), f"{what}.payloadType")
    payload = _b64(_field(obj, what, "payload"), f"{what}.payload", MAX_PAYLOAD_BYTES,
                   empty=True)
    signatures = []
    for i, item in enumerate(_items(_field(obj, what, "signatures"), f"{what}.signatures",
                                    MAX_SIGNATURES)):
        sub = f"{what}.signatures[{i}]"
        item = _obj(item, sub)
        sig = _b64(_field(item, sub, "sig"), f"{sub}.sig", MAX_SIGNATURE_BYTES)
        keyid = item.get("keyid")
        keyid = "" if keyid is None else _text(keyid, f"{sub}.keyid", empty=True)
        signatures.append((sig, keyid))
    return _Envelope(payload_type, payload, tuple(signatures))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _verify_each(envelope: _Envelope, signers: list[_Signer], what: str) -> list[_Signer]:
    """For each envelope signature, the first verifier whose key verifies it over the PAE."""
    pae = _pae(envelope.payload_type, envelope.payload)
    found = []
    for i, (sig, _keyid) in enumerate(envelope.signatures):
        match = next((s for s in signers if s.key.family != "ed25519ph"
                      and s.key.verify(sig, pae)), None)
        if match is None:
            raise E(f"{what}.signatures[{i}] does not verify with any of the listed verifiers",
                    actual=f"{len(signers)} verifier(s) tried",
                    expected="a signature over the DSSE PAE by one of them")
        found.append(match)
    return found


# -- Rekor v1 kinds -------------------------------------------------------------------------
_V1_HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}


def _hashedrekord_001(spec: dict[str, Any]) -> tuple[dict[str, Any], _Keys]:
    """SPEC: rekor pkg/types/hashedrekord/v0.0.1: a signature over a digest (prehashed)."""
    data = _obj(_field(spec, "spec", "data"), "spec.data")
    hash_json = _obj(_field(data, "spec.data", "hash"), "spec.data.hash")
    algorithm = _text(_field(hash_json, "spec.data.hash", "algorithm"), "spec.data.hash.algorithm")
    size = _V1_HASHES.get(algorithm)
    if size is None:
        raise E("spec.data.hash.algorithm is not supported", actual=algorithm,
                expected="sha256, sha384 or sha512")
    value = _text(_field(hash_json, "spec.data.hash", "value"), "spec.data.hash.value")
    if len(value) != 2 * size:
        raise E("spec.data.hash.value has the wrong length for its algorithm",
                actual=f"{len(value)} hex characters", expected=f"{2 * size} for {algorithm}")
    digest = hexdecode(value, "spec.data.hash.value", E)
    signature = _obj(_field(spec, "spec", "signature"), "spec.signature")
    sig = _b64(_field(signature, "spec.signature", "content"), "spec.signature.content",
               MAX_SIGNATURE_BYTES)
    key_json = _obj(_field(signature, "spec.signature", "publicKey"), "spec.signature.publicKey")
    signer = _pem_signer(_field(key_json, "spec.signature.publicKey", "content"),
                         "spec.signature.publicKey.content")
    if signer.key.family in ("ed25519", "ed25519ph"):
        raise E("Ed25519 keys cannot sign a prehashed digest; log a dsse entry instead",
                actual="Ed25519 key", expected="an ECDSA or RSA key")
    if not signer.key.verify_digest(sig, digest, algorithm):
        raise E("spec.signature.content does not verify over the digest with the given key",
                actual=f"{algorithm} digest {digest.hex()}")
    keys = _Keys()
    keys.add(algorithm, digest.hex())
    keys.signer(signer)
    body_spec = {
        "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
        "signature": {"content": _b64s(sig), "publicKey": {"content": _b64s(signer.canonical)}},
    }
    return body_spec, keys


def _dsse_001(spec: dict[str, Any]) -> tuple[dict[str, Any], _Keys]:
    """SPEC: rekor pkg/types/dsse/v0.0.1: an envelope (as a JSON string) and its verifiers."""
    proposed = _obj(_field(spec, "spec", "proposedContent"), "spec.proposedContent")
    what = "spec.proposedContent"
    text = _text(_field(proposed, what, "envelope"), f"{what}.envelope",
                 max_chars=MAX_TEXT_CHARS)
    try:
        raw_text = text.encode("utf-8")
        parsed = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise E(f"{what}.envelope is not a valid JSON DSSE envelope: {exc}") from exc
    _check_shape(parsed, f"{what}.envelope")
    envelope = _envelope(parsed, f"{what}.envelope")
    signers = [_pem_signer(item, f"{what}.verifiers[{i}]") for i, item in
               enumerate(_items(_field(proposed, what, "verifiers"), f"{what}.verifiers",
                                MAX_VERIFIERS))]
    matched = _verify_each(envelope, signers, f"{what}.envelope")
    keys = _Keys()
    envelope_hash = hashlib.sha256(raw_text).hexdigest()
    payload_hash = hashlib.sha256(envelope.payload).hexdigest()
    keys.add("sha256", payload_hash)
    keys.subjects(envelope.payload_type, envelope.payload)
    keys.add("sha256", envelope_hash)
    for signer in matched:
        keys.signer(signer)
    # SPEC: rekor dsse v0.0.1 Canonicalize sorts the signatures by their (base64) value.
    signatures = sorted(({"signature": _b64s(sig), "verifier": _b64s(signer.canonical)}
                         for (sig, _), signer in zip(envelope.signatures, matched)),
                        key=lambda item: item["signature"])
    body_spec = {
        "envelopeHash": {"algorithm": "sha256", "value": envelope_hash},
        "payloadHash": {"algorithm": "sha256", "value": payload_hash},
        "signatures": signatures,
    }
    return body_spec, keys


def _intoto_002(spec: dict[str, Any]) -> tuple[dict[str, Any], _Keys]:
    """SPEC: rekor pkg/types/intoto/v0.0.2 (sigstore-js legacy): payload and sig are base64
    applied twice; each signature carries its own base64 PEM public key."""
    what = "spec.content"
    content = _obj(_field(spec, "spec", "content"), what)
    env_what = f"{what}.envelope"
    env = _obj(_field(content, what, "envelope"), env_what)
    payload_type = _text(_field(env, env_what, "payloadType"), f"{env_what}.payloadType")
    outer = _b64(_field(env, env_what, "payload"), f"{env_what}.payload",
                 4 * (MAX_PAYLOAD_BYTES // 3 + 1), empty=True)
    payload = _b64(outer.decode("ascii", "replace"), f"{env_what}.payload (inner base64)",
                   MAX_PAYLOAD_BYTES, empty=True)
    pae = _pae(payload_type, payload)
    sig_items = []
    hash_sigs = []
    signers = []
    for i, item in enumerate(_items(_field(env, env_what, "signatures"),
                                    f"{env_what}.signatures", MAX_SIGNATURES)):
        sub = f"{env_what}.signatures[{i}]"
        item = _obj(item, sub)
        sig_outer = _b64(_field(item, sub, "sig"), f"{sub}.sig", 4 * (MAX_SIGNATURE_BYTES // 3 + 1))
        sig = _b64(sig_outer.decode("ascii", "replace"), f"{sub}.sig (inner base64)",
                   MAX_SIGNATURE_BYTES)
        signer = _pem_signer(_field(item, sub, "publicKey"), f"{sub}.publicKey")
        keyid = item.get("keyid")
        keyid = "" if keyid is None else _text(keyid, f"{sub}.keyid", empty=True)
        if signer.key.family == "ed25519ph" or not signer.key.verify(sig, pae):
            raise E(f"{sub}.sig does not verify over the DSSE PAE with its publicKey")
        # SPEC: unlike hashedrekord and dsse, rekor intoto 0.0.2 copies the signatures as
        # sent: the PEM is not re-encoded (the conformance sample keeps a one-line PEM).
        try:
            pem_text = signer.sent.decode("ascii")
        except UnicodeDecodeError as exc:
            raise E(f"{sub}.publicKey is not an ASCII PEM") from exc
        sig_text = _b64s(sig)
        # go-swagger omits an empty keyid (omitempty), and so do clients hashing the envelope.
        entry: dict[str, Any] = {"publicKey": _b64s(signer.sent),
                                 "sig": _b64s(sig_text.encode("ascii"))}
        hashed: dict[str, Any] = {"publicKey": pem_text, "sig": sig_text}
        if keyid:
            entry["keyid"] = keyid
            hashed["keyid"] = keyid
        sig_items.append(entry)
        hash_sigs.append(hashed)
        signers.append(signer)
    for name in ("hash", "payloadHash"):
        if content.get(name) is not None:
            _sha256_hex(content[name], f"{what}.{name}")
    # The envelope hash is recomputed, never taken from the client: sigstore-js computes it
    # as SHA-256 of the JCS of the envelope with payload and sig base64-encoded once and the
    # publicKey as PEM text (reproduces the conformance sample); the payload hash likewise.
    envelope_hash = hashlib.sha256(_jcs({
        "payloadType": payload_type, "payload": _b64s(payload), "signatures": hash_sigs,
    })).hexdigest()
    payload_hash = hashlib.sha256(payload).hexdigest()
    keys = _Keys()
    keys.add("sha256", payload_hash)
    keys.subjects(payload_type, payload)
    for signer in signers:
        keys.signer(signer)
    # SPEC: sigstore-wire.md §3: the canonical intoto 0.0.2 body drops the payload.
    body_spec = {"content": {
        "envelope": {"payloadType": payload_type, "signatures": sig_items},
        "hash": {"algorithm": "sha256", "value": envelope_hash},
        "payloadHash": {"algorithm": "sha256", "value": payload_hash},
    }}
    return body_spec, keys


_V1_KINDS: dict[tuple[str, str], Callable[[dict[str, Any]], tuple[dict[str, Any], _Keys]]] = {
    ("hashedrekord", "0.0.1"): _hashedrekord_001,
    ("dsse", "0.0.1"): _dsse_001,
    ("intoto", "0.0.2"): _intoto_002,
}


def _canonicalize_v1(request: Any, trusted: IssuerCheck | None = None) -> CanonicalEntry:
    _check_shape(request, "entry request")
    obj = _obj(request, "entry request")
    kind = _text(_field(obj, "entry request", "kind"), "entry request kind")
    version = _text(_field(obj, "entry request", "apiVersion"), "entry request apiVersion")
    handler = _V1_KINDS.get((kind, version))
    if handler is None:
        raise E("unsupported entry kind or version", actual=f"{kind} {version}",
                expected=", ".join(SUPPORTED_V1))
    body_spec, keys = handler(_obj(_field(obj, "entry request", "spec"), "spec"))
    body = _jcs({"apiVersion": version, "kind": kind, "spec": body_spec})
    return CanonicalEntry(kind, version, body, keys.result(trusted))


# -- Rekor v2 kinds -------------------------------------------------------------------------
def _hashedrekord_002(req: dict[str, Any]) -> tuple[str, dict[str, Any], _Keys]:
    """SPEC: rekor-tiles pkg/types/hashedrekord: request V002 -> HashedRekordLogEntryV002."""
    what = "hashedRekordRequestV002"
    digest = _b64(_field(req, what, "digest"), f"{what}.digest", MAX_DIGEST_BYTES)
    signature = _obj(_field(req, what, "signature"), f"{what}.signature")
    sig = _b64(_field(signature, f"{what}.signature", "content"), f"{what}.signature.content",
               MAX_SIGNATURE_BYTES)
    signer, hash_name, proto_hash = _v2_signer(
        _field(signature, f"{what}.signature", "verifier"), f"{what}.signature.verifier")
    expected = hashlib.new(hash_name).digest_size
    if len(digest) != expected:
        raise E(f"{what}.digest length does not match the hash of keyDetails",
                actual=f"{len(digest)} bytes", expected=f"{expected} bytes ({proto_hash})")
    if not signer.key.verify_digest(sig, digest, hash_name):
        raise E(f"{what}.signature.content does not verify over the digest with the verifier",
                actual=f"{proto_hash} digest {digest.hex()}")
    keys = _Keys()
    keys.add(hash_name, digest.hex())
    keys.signer(signer)
    spec = {"hashedRekordV002": {
        "data": {"algorithm": proto_hash, "digest": _b64s(digest)},
        "signature": {"content": _b64s(sig), "verifier": signer.canonical},
    }}
    return "hashedrekord", spec, keys


def _dsse_002(req: dict[str, Any]) -> tuple[str, dict[str, Any], _Keys]:
    """SPEC: rekor-tiles pkg/types/dsse (deprecated, still sent by sigstore-js)."""
    what = "dsseRequestV002"
    envelope = _envelope(_field(req, what, "envelope"), f"{what}.envelope")
    signers = [_v2_signer(item, f"{what}.verifiers[{i}]")[0] for i, item in
               enumerate(_items(_field(req, what, "verifiers"), f"{what}.verifiers",
                                MAX_VERIFIERS))]
    matched = _verify_each(envelope, signers, f"{what}.envelope")
    payload_hash = hashlib.sha256(envelope.payload).digest()
    keys = _Keys()
    keys.add("sha256", payload_hash.hex())
    keys.subjects(envelope.payload_type, envelope.payload)
    for signer in matched:
        keys.signer(signer)
    spec = {"dsseV002": {
        "payloadHash": {"algorithm": "SHA2_256", "digest": _b64s(payload_hash)},
        "signatures": [{"content": _b64s(sig), "verifier": signer.canonical}
                       for (sig, _), signer in zip(envelope.signatures, matched)],
    }}
    return "dsse", spec, keys


_V2_KINDS: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any], _Keys]]]] = {
    "hashedRekordRequestV002": ("hashed_rekord_request_v002", _hashedrekord_002),
    "dsseRequestV002": ("dsse_request_v002", _dsse_002),
}


def _canonicalize_v2(request: Any, trusted: IssuerCheck | None = None) -> CanonicalEntry:
    _check_shape(request, "entry request")
    obj = _obj(request, "entry request")
    present = [(name, snake, handler) for name, (snake, handler) in _V2_KINDS.items()
               if name in obj or snake in obj]
    if not present:
        raise E("entry request has no supported entry kind", actual=sorted(obj)[:8],
                expected=" or ".join(SUPPORTED_V2))
    if len(present) > 1:
        raise E("entry request must hold exactly one entry kind",
                actual=[name for name, _, _ in present])
    name, snake, handler = present[0]
    kind, spec, keys = handler(_obj(_field(obj, "entry request", name, snake), name))
    body = _jcs({"apiVersion": "0.0.2", "kind": kind, "spec": spec})
    return CanonicalEntry(kind, "0.0.2", body, keys.result(trusted))


# -- public API -----------------------------------------------------------------------------
def _guarded(function: Callable[[Any, IssuerCheck | None], CanonicalEntry], request: Any,
             trusted: IssuerCheck | None) -> CanonicalEntry:
    try:
        return function(request, trusted)
    except LogEntryInvalidError:
        raise
    except Error as exc:
        # A shared helper raised another sealtrail class; the request is what is at fault.
        raise E(exc.message, expected=exc.expected, actual=exc.actual) from exc
    except (ValueError, TypeError, UnicodeError, RecursionError, OverflowError,
            UnsupportedAlgorithm) as exc:
        raise E(f"log entry request is malformed: {type(exc).__name__}") from exc
    except Exception as exc:  # pragma: no cover - last resort: never a foreign exception
        raise E(_INTERNAL, actual=type(exc).__name__) from exc


def canonicalize_v1(request: Any, *, trusted: IssuerCheck | None = None) -> CanonicalEntry:
    """Check a Rekor v1 ``POST /api/v1/log/entries`` request and return its canonical entry.

    ``request`` is the decoded JSON ``{"apiVersion","kind","spec"}`` of hashedrekord 0.0.1,
    dsse 0.0.1 or intoto 0.0.2. Every signature is verified with the key or certificate the
    request names before the body is built. Raises :class:`LogEntryInvalidError` for any
    request that is malformed, oversized, unsupported or whose signatures do not verify.

    ``trusted`` tells whether a signer's certificate comes from a CA that checked the
    identity in it; one that does not is not filed under its identity and issuer (see
    :data:`IssuerCheck`). None files every certificate under what it names, as Rekor does.
    """
    return _guarded(_canonicalize_v1, request, trusted)


def canonicalize_v2(request: Any, *, trusted: IssuerCheck | None = None) -> CanonicalEntry:
    """Check a Rekor v2 ``POST /api/v2/log/entries`` request and return its canonical entry.

    ``request`` is the decoded protobuf-JSON ``{"hashedRekordRequestV002": ...}`` or
    ``{"dsseRequestV002": ...}`` (proto field names are accepted too). The result is
    hashedrekord or dsse, version 0.0.2. Raises :class:`LogEntryInvalidError` for anything
    refused, including keyDetails outside rekor-tiles' allowed set. ``trusted``: as for
    :func:`canonicalize_v1`.
    """
    return _guarded(_canonicalize_v2, request, trusted)
