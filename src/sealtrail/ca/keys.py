"""Key material of the certificate authority: root, intermediate and the CT log key.

SPEC: sigstore-wire.md §0, §1: the CA issuing leaves must not be Ed25519 (cryptography's
webpki verifier and sigstore-python refuse it); Fulcio uses ECDSA P-384 for its root and
intermediate and the intermediate carries EKU codeSigning (Go's verifier, used by
sigstore-go and cosign, requires a CA's EKU to allow what it issues). §2: the CT log key is
ECDSA P-256 (sigstore-python's SCT check accepts EC or RSA keys only).

On disk (docs/instance.md): ``keys/ca-root.pem``, ``keys/ca-intermediate.pem`` and
``keys/ctlog.pem`` hold PKCS#8 private keys (mode 0600, written with O_EXCL, optionally
encrypted with a passphrase); ``certs/ca-root.pem`` and ``certs/ca-intermediate.pem`` hold
the public certificates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail._internal.keyfiles import (
    ca_certificate_builder,
    distinguished_name,
    load_certificates,
    load_private_key,
    write_certificate,
    validity_window,
    write_private_key,
)
from sealtrail.errors import ConfigInvalidError, KeyMalformedError

__all__ = [
    "CAMaterial",
    "CA_INTERMEDIATE_CERT_FILE",
    "CA_INTERMEDIATE_KEY_FILE",
    "CA_ROOT_CERT_FILE",
    "CA_ROOT_KEY_FILE",
    "CT_KEY_FILE",
    "create_ca",
    "create_ct_key",
    "load_ca",
    "load_certificate",
    "load_ct_key",
    "load_private_key",
    "save_ct_key",
    "write_certificate",
    "write_private_key",
]

CA_ROOT_KEY_FILE = "ca-root.pem"
CA_INTERMEDIATE_KEY_FILE = "ca-intermediate.pem"
CT_KEY_FILE = "ctlog.pem"
CA_ROOT_CERT_FILE = "ca-root.pem"
CA_INTERMEDIATE_CERT_FILE = "ca-intermediate.pem"

DEFAULT_VALIDITY = timedelta(days=10 * 365)
# A key or certificate file is a few KiB; refuse anything absurd before parsing it.

_CA_CURVES = ("secp384r1", "secp256r1")


@dataclass(frozen=True)
class CAMaterial:
    """The CA's keys and certificates.

    ``root_key`` is ``None`` when loaded without it: issuing leaves needs only the
    intermediate key; the root key is needed only to certify a new intermediate.
    """

    root_key: ec.EllipticCurvePrivateKey | None
    root_cert: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate_cert: x509.Certificate

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        """The chain intermediate -> root: the order of trusted_root.json and of Fulcio."""
        return (self.intermediate_cert, self.root_cert)

    def save(self, keys_dir: str | os.PathLike[str], certs_dir: str | os.PathLike[str], *,
             passphrase: bytes | None = None) -> None:
        """Write the private keys (0600, never overwriting) and the public certificates.

        Files: ``keys_dir/ca-root.pem`` (if the root key is held),
        ``keys_dir/ca-intermediate.pem``, ``certs_dir/ca-root.pem`` and
        ``certs_dir/ca-intermediate.pem``. ``passphrase`` encrypts the private keys.
        Raises :class:`ConfigInvalidError` if a file exists or cannot be written.
        """
        keys = Path(keys_dir)
        certs = Path(certs_dir)
        if self.root_key is not None:
            write_private_key(keys / CA_ROOT_KEY_FILE, self.root_key, passphrase=passphrase)
        write_private_key(keys / CA_INTERMEDIATE_KEY_FILE, self.intermediate_key,
                          passphrase=passphrase)
        write_certificate(certs / CA_ROOT_CERT_FILE, self.root_cert)
        write_certificate(certs / CA_INTERMEDIATE_CERT_FILE, self.intermediate_cert)


def create_ca(organization: str, common_name: str, *, validity: timedelta = DEFAULT_VALIDITY,
              now: datetime | None = None) -> CAMaterial:
    """Create a CA: a self-signed ECDSA P-384 root and a P-384 intermediate it certifies.

    Root: subject O=``organization``, CN=``common_name``; basicConstraints CA (pathlen 1),
    keyUsage keyCertSign+cRLSign (critical), SKI, AKI. Intermediate: CN=``common_name`` +
    " intermediate"; CA with pathlen 0, keyCertSign+cRLSign, EKU codeSigning (non-critical,
    as Fulcio's intermediate), SKI, AKI = the root's SKI. Both valid from ``now`` (minus a
    few minutes) for ``validity``. Raises :class:`ConfigInvalidError` for bad arguments.
    """
    for value, what in ((organization, "organization"), (common_name, "common name")):
        if not isinstance(value, str) or not value.strip():
            raise ConfigInvalidError(f"CA {what} must be a non-empty string")
    if validity <= timedelta(0):
        raise ConfigInvalidError("CA validity must be positive", actual=str(validity))
    start, end = validity_window(now, validity)

    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = distinguished_name(organization, common_name)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root_cert = (
        ca_certificate_builder(root_name, root_name, root_key.public_key(), start, end, path_length=1)
        .add_extension(root_ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                       critical=False)
        .sign(root_key, hashes.SHA384())
    )

    intermediate_key = ec.generate_private_key(ec.SECP384R1())
    intermediate_cert = (
        ca_certificate_builder(distinguished_name(organization, common_name + " intermediate"), root_name,
                    intermediate_key.public_key(), start, end, path_length=0)
        # SPEC: sigstore-wire.md §1 / Fulcio: the intermediate's EKU allows code signing, so
        # that Go's EKU nesting check accepts the code-signing leaves it issues.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(intermediate_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                       critical=False)
        .sign(root_key, hashes.SHA384())
    )
    return CAMaterial(root_key=root_key, root_cert=root_cert, intermediate_key=intermediate_key,
                      intermediate_cert=intermediate_cert)


def create_ct_key() -> ec.EllipticCurvePrivateKey:
    """A new CT log key. SPEC: sigstore-wire.md §2: use an ECDSA P-256 log key."""
    return ec.generate_private_key(ec.SECP256R1())


def load_ca(keys_dir: str | os.PathLike[str], certs_dir: str | os.PathLike[str], *,
            passphrase: bytes | None = None, with_root_key: bool = False) -> CAMaterial:
    """Load what :meth:`CAMaterial.save` wrote and check that it fits together.

    The root private key is loaded only when ``with_root_key``. Raises
    :class:`ConfigInvalidError` for missing, unsafe or inconsistent files and
    :class:`KeyMalformedError` for a key that does not parse (or a wrong passphrase).
    """
    keys = Path(keys_dir)
    certs = Path(certs_dir)
    root_cert = load_certificate(certs / CA_ROOT_CERT_FILE)
    intermediate_cert = load_certificate(certs / CA_INTERMEDIATE_CERT_FILE)
    intermediate_key = _require_ca_key(
        load_private_key(keys / CA_INTERMEDIATE_KEY_FILE, passphrase=passphrase),
        CA_INTERMEDIATE_KEY_FILE)
    if intermediate_key.public_key() != intermediate_cert.public_key():
        raise ConfigInvalidError(
            f"{CA_INTERMEDIATE_KEY_FILE} does not match the CA intermediate certificate")
    try:
        intermediate_cert.verify_directly_issued_by(root_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise ConfigInvalidError("CA intermediate certificate is not issued by the CA root") \
            from exc
    root_key = None
    if with_root_key:
        root_key = _require_ca_key(
            load_private_key(keys / CA_ROOT_KEY_FILE, passphrase=passphrase), CA_ROOT_KEY_FILE)
        if root_key.public_key() != root_cert.public_key():
            raise ConfigInvalidError(f"{CA_ROOT_KEY_FILE} does not match the CA root certificate")
    return CAMaterial(root_key=root_key, root_cert=root_cert, intermediate_key=intermediate_key,
                      intermediate_cert=intermediate_cert)


def save_ct_key(keys_dir: str | os.PathLike[str], key: ec.EllipticCurvePrivateKey, *,
                passphrase: bytes | None = None) -> None:
    """Write the CT log key to ``keys_dir/ctlog.pem`` (0600, never overwriting)."""
    write_private_key(Path(keys_dir) / CT_KEY_FILE, key, passphrase=passphrase)


def load_ct_key(keys_dir: str | os.PathLike[str], *,
                passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read ``keys_dir/ctlog.pem``; it must be an ECDSA P-256 key (sigstore-wire.md §2)."""
    key = load_private_key(Path(keys_dir) / CT_KEY_FILE, passphrase=passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyMalformedError(f"{CT_KEY_FILE} is not an ECDSA P-256 private key",
                                actual=type(key).__name__)
    return key


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read one PEM certificate. Raises :class:`ConfigInvalidError`."""
    return load_certificates(path)[0]


# -- helpers -------------------------------------------------------------------------------

def _require_ca_key(key: object, what: str) -> ec.EllipticCurvePrivateKey:
    # SPEC: sigstore-wire.md §0: the issuing CA must not be Ed25519; the SCT issuer key must
    # be EC or RSA. We only ever create ECDSA CA keys.
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CA_CURVES:
        raise KeyMalformedError(f"{what} is not an ECDSA P-384 or P-256 private key",
                                actual=type(key).__name__)
    return key
