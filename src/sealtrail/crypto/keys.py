"""Public keys as Sigstore describes them, and signature verification.

A key is a SubjectPublicKeyInfo plus, optionally, the protobuf-specs ``PublicKeyDetails``
name that fixes its algorithm (for example ``PKIX_ECDSA_P256_SHA_256``). Keys found in
certificates have no details; their algorithm follows from the key type.
"""

from __future__ import annotations

from typing import NamedTuple

import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from sealtrail.errors import Error, KeyMalformedError

__all__ = ["HASHES", "PublicKey", "hash_by_name"]

# Digest names used across Sigstore wire formats, mapped to hashlib names.
HASHES: dict[str, str] = {
    "SHA2_256": "sha256",
    "SHA2_384": "sha384",
    "SHA2_512": "sha512",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}

_CRYPTO_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

# SPEC: protobuf-specs sigstore_common.proto PublicKeyDetails -> (family, curve or size, hash).
_DETAILS: dict[str, tuple[str, str | int | None, str | None]] = {
    "PKIX_ECDSA_P256_SHA_256": ("ecdsa", "secp256r1", "sha256"),
    "PKIX_ECDSA_P384_SHA_384": ("ecdsa", "secp384r1", "sha384"),
    "PKIX_ECDSA_P521_SHA_512": ("ecdsa", "secp521r1", "sha512"),
    "PKIX_ED25519": ("ed25519", None, None),
    "PKIX_ED25519_PH": ("ed25519ph", None, "sha512"),
    "PKIX_RSA_PKCS1V15_2048_SHA256": ("rsa-pkcs1", 2048, "sha256"),
    "PKIX_RSA_PKCS1V15_3072_SHA256": ("rsa-pkcs1", 3072, "sha256"),
    "PKIX_RSA_PKCS1V15_4096_SHA256": ("rsa-pkcs1", 4096, "sha256"),
    "PKIX_RSA_PSS_2048_SHA256": ("rsa-pss", 2048, "sha256"),
    "PKIX_RSA_PSS_3072_SHA256": ("rsa-pss", 3072, "sha256"),
    "PKIX_RSA_PSS_4096_SHA256": ("rsa-pss", 4096, "sha256"),
    # Deprecated spellings still found in older trust roots.
    "PKIX_RSA_PKCS1V5": ("rsa-pkcs1", None, "sha256"),
    "PKCS1_RSA_PKCS1V5": ("rsa-pkcs1", None, "sha256"),
    "PKIX_RSA_PSS": ("rsa-pss", None, "sha256"),
    "PKCS1_RSA_PSS": ("rsa-pss", None, "sha256"),
    "PKIX_ECDSA_P256_HMAC_SHA_256": ("ecdsa", "secp256r1", "sha256"),
}

_CURVE_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


def hash_by_name(name: str, error: type[Error] = KeyMalformedError) -> str:
    """Map a wire digest name (``SHA2_256``, ``sha256``...) to a hashlib name."""
    try:
        return HASHES[name]
    except KeyError:
        raise error("unsupported digest algorithm", actual=name,
                    expected="one of SHA2_256, SHA2_384, SHA2_512") from None


class PublicKey(NamedTuple):
    """A verification key with a fixed algorithm."""

    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    family: str  # "ecdsa" | "ed25519" | "ed25519ph" | "rsa-pkcs1" | "rsa-pss"
    default_hash: str | None  # hashlib name, None for pure Ed25519
    details: str | None = None

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_key(cls, key: object, details: str | None = None,
                 error: type[Error] = KeyMalformedError) -> "PublicKey":
        """Wrap a ``cryptography`` public key, checking it against ``details``."""
        if details is not None:
            spec = _DETAILS.get(details)
            if spec is None:
                raise error("unsupported key details", actual=details)
            family, param, digest = spec
            ok = (
                (family == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey)
                 and key.curve.name == param)
                or (family in ("ed25519", "ed25519ph") and isinstance(key, ed25519.Ed25519PublicKey))
                or (family.startswith("rsa") and isinstance(key, rsa.RSAPublicKey)
                    and (param is None or key.key_size == param))
            )
            # (``ok`` implies the isinstance check, which tells the type checker the type.)
            if not ok or not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey,
                                              rsa.RSAPublicKey)):
                raise error("public key does not match its key details", actual=details)
            return cls(key, family, digest, details)
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = _CURVE_HASH.get(key.curve.name)
            if digest is None:
                raise error("unsupported elliptic curve", actual=key.curve.name)
            return cls(key, "ecdsa", digest)
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(key, "ed25519", None)
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                raise error("RSA key is too small", actual=key.key_size, expected=">= 2048")
            return cls(key, "rsa-pkcs1", "sha256")
        raise error("unsupported public key type", actual=type(key).__name__)

    @classmethod
    def from_spki_der(cls, der: bytes, details: str | None = None,
                      error: type[Error] = KeyMalformedError) -> "PublicKey":
        """Load a DER SubjectPublicKeyInfo."""
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise error("public key does not parse") from exc
        return cls.from_key(key, details, error)

    @classmethod
    def from_pem(cls, pem: bytes, error: type[Error] = KeyMalformedError) -> "PublicKey":
        """Load a PEM public key (``-----BEGIN PUBLIC KEY-----``)."""
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise error("public key PEM does not parse") from exc
        return cls.from_key(key, None, error)

    # -- identity -----------------------------------------------------------------
    @property
    def spki_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo."""
        return self.key.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def key_id(self) -> bytes:
        """SHA-256 of the DER SPKI: the log id of Rekor v1 logs and CT logs."""
        return hashlib.sha256(self.spki_der).digest()

    def same_key(self, other: "PublicKey") -> bool:
        """Whether both wrap the same public key material."""
        return self.spki_der == other.spki_der

    # -- verification -------------------------------------------------------------
    def verify(self, signature: bytes, data: bytes, hash_name: str | None = None) -> bool:
        """Whether ``signature`` is valid over ``data`` (hashed with the key's hash)."""
        digest_name = hash_name or self.default_hash
        try:
            if self.family == "ed25519":
                assert isinstance(self.key, ed25519.Ed25519PublicKey)
                self.key.verify(signature, data)
                return True
            if self.family == "ed25519ph":
                return False  # Ed25519ph is not supported by cryptography; never accept.
            assert digest_name is not None
            return self._verify_digest(signature, hashlib.new(digest_name, data).digest(),
                                       digest_name)
        except InvalidSignature:
            return False

    def verify_digest(self, signature: bytes, digest: bytes, hash_name: str) -> bool:
        """Whether ``signature`` is valid over a precomputed ``digest`` (hashedrekord)."""
        if self.family in ("ed25519", "ed25519ph"):
            return False  # Ed25519 signs messages, never digests.
        if len(digest) != hashlib.new(hash_name).digest_size:
            return False
        try:
            return self._verify_digest(signature, digest, hash_name)
        except InvalidSignature:
            return False

    def _verify_digest(self, signature: bytes, digest: bytes, hash_name: str) -> bool:
        algorithm = Prehashed(_CRYPTO_HASHES[hash_name]())
        # from_key ties each family to its key type.
        if self.family == "ecdsa":
            assert isinstance(self.key, ec.EllipticCurvePublicKey)
            self.key.verify(signature, digest, ec.ECDSA(algorithm))
        elif self.family == "rsa-pkcs1":
            assert isinstance(self.key, rsa.RSAPublicKey)
            self.key.verify(signature, digest, padding.PKCS1v15(), algorithm)
        elif self.family == "rsa-pss":
            assert isinstance(self.key, rsa.RSAPublicKey)
            pss = padding.PSS(mgf=padding.MGF1(_CRYPTO_HASHES[hash_name]()),
                              salt_length=padding.PSS.AUTO)
            self.key.verify(signature, digest, pss, algorithm)
        else:
            return False
        return True
