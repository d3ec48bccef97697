"""Managed signing keys: an alternative to keyless signing for people who keep a key.

``generate_key_pair(passphrase)`` makes an ECDSA P-256 key and returns its private half as
an encrypted PKCS#8 PEM (PBKDF2 + AES-256-CBC, cryptography's best available encryption)
and its public half as a SubjectPublicKeyInfo PEM. ``load_private_key`` reads such a key.
P-256 with SHA-256 is the one algorithm every Sigstore client and log accepts for
hashedrekord (sigstore-wire.md §4, keyDetails ``PKIX_ECDSA_P256_SHA_256``).
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import KeyMalformedError, UsageError

__all__ = ["KEY_DETAILS", "MAX_KEY_BYTES", "generate_key_pair", "load_private_key",
           "public_key_pem"]

KEY_DETAILS = "PKIX_ECDSA_P256_SHA_256"
MAX_KEY_BYTES = 64 * 1024
MIN_PASSPHRASE_BYTES = 1


def public_key_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``key``."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_key_pair(passphrase: bytes) -> tuple[bytes, bytes]:
    """A fresh P-256 key: ``(encrypted private PEM, public PEM)``.

    Raises :class:`UsageError` for an empty passphrase: an unencrypted private key on disk
    is exactly what this command exists to avoid.
    """
    if not isinstance(passphrase, bytes) or len(passphrase) < MIN_PASSPHRASE_BYTES:
        raise UsageError("the private key needs a non-empty passphrase")
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(passphrase))
    return private, public_key_pem(key)


def load_private_key(pem: bytes, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM private key (encrypted with ``passphrase``, or not) and check it is P-256.

    Raises :class:`KeyMalformedError` for a key that does not parse, a wrong passphrase, or
    another algorithm.
    """
    if len(pem) > MAX_KEY_BYTES:
        raise KeyMalformedError("private key file is too large", actual=len(pem),
                                expected=f"<= {MAX_KEY_BYTES} bytes")
    try:
        key = serialization.load_pem_private_key(pem, passphrase or None)
    except TypeError as exc:
        # cryptography: a password for an unencrypted key, or none for an encrypted one.
        needs = "needs a passphrase" if passphrase is None else "is not encrypted"
        raise KeyMalformedError(f"private key {needs}: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyMalformedError("private key does not load (wrong passphrase or not a PEM "
                                "private key)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyMalformedError("only ECDSA P-256 signing keys are supported",
                                actual=getattr(getattr(key, "curve", None), "name",
                                               type(key).__name__),
                                expected="secp256r1")
    return key
