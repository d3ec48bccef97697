"""Key material of the timestamp authority: a self-signed root and a timeStamping leaf.

SPEC: sigstore-wire.md §5 "TSA leaf cert" and RFC 3161 §2.3: the leaf's extended key usage is
exactly id-kp-timeStamping and *critical* (OpenSSL's TIMESTAMP_SIGN purpose, used by
sigstore-python through rfc3161-client, rejects a non-critical one); key usage
digitalSignature. SPEC: sigstore-wire.md §6: the trusted root lists the TSA chain leaf -> root,
with at least two certificates.

On disk (docs/instance.md): ``keys/tsa-root.pem`` and ``keys/tsa-leaf.pem`` hold PKCS#8 private
keys (mode 0600, optionally encrypted with a passphrase); ``certs/tsa-chain.pem`` holds the
public chain, leaf first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail._internal.keyfiles import (
    ca_certificate_builder,
    distinguished_name,
    load_certificates,
    write_exclusive,
    validity_window,
    write_private_key,
)
from sealtrail._internal.keyfiles import load_private_key as _load_private_key
from sealtrail.errors import ConfigInvalidError, KeyMalformedError

__all__ = [
    "CHAIN_FILE",
    "LEAF_KEY_FILE",
    "ROOT_KEY_FILE",
    "TSAMaterial",
    "create_tsa",
    "load_chain_pem",
    "load_private_key",
    "load_tsa",
    "write_private_key",
]

ROOT_KEY_FILE = "tsa-root.pem"
LEAF_KEY_FILE = "tsa-leaf.pem"
CHAIN_FILE = "tsa-chain.pem"

DEFAULT_VALIDITY = timedelta(days=10 * 365)
# A key or chain file is a few KiB; refuse anything absurd before parsing it.
MAX_CHAIN_CERTS = 16

_CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}


@dataclass(frozen=True)
class TSAMaterial:
    """The TSA's keys and certificates.

    ``root_key`` may be ``None`` when the material was loaded without it (a serving TSA needs
    only the leaf key).
    """

    root_key: ec.EllipticCurvePrivateKey | None
    root_cert: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf_cert: x509.Certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The chain leaf -> root, the order trusted_root.json uses for TSAs."""
        return (self.leaf_cert, self.root_cert)

    def chain_pem(self) -> bytes:
        """The chain as concatenated PEM, leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def save(self, keys_dir: str | os.PathLike[str], certs_dir: str | os.PathLike[str], *,
             passphrase: bytes | None = None) -> None:
        """Write the private keys (0600, refusing to overwrite) and the public chain.

        Files: ``keys_dir/tsa-root.pem`` (if the root key is held), ``keys_dir/tsa-leaf.pem``
        and ``certs_dir/tsa-chain.pem``. ``passphrase`` encrypts the private keys.
        """
        keys = Path(keys_dir)
        certs = Path(certs_dir)
        if self.root_key is not None:
            write_private_key(keys / ROOT_KEY_FILE, self.root_key, passphrase=passphrase)
        write_private_key(keys / LEAF_KEY_FILE, self.leaf_key, passphrase=passphrase)
        write_exclusive(certs / CHAIN_FILE, self.chain_pem(), 0o644)


def create_tsa(organization: str, common_name: str, *, leaf_curve: str = "P-256",
               validity: timedelta = DEFAULT_VALIDITY,
               now: datetime | None = None) -> TSAMaterial:
    """Create a TSA: a self-signed ECDSA P-384 root and an ECDSA leaf it certifies.

    The leaf (``leaf_curve`` "P-256" or "P-384") has subject O=``organization``,
    CN=``common_name``; the root CN=``common_name`` + " Root". Both are valid from ``now``
    (minus a few minutes) for ``validity``.
    """
    if not isinstance(organization, str) or not organization.strip():
        raise ConfigInvalidError("TSA organization must be a non-empty string")
    if not isinstance(common_name, str) or not common_name.strip():
        raise ConfigInvalidError("TSA common name must be a non-empty string")
    # SPEC: RFC 5280 Appendix A: ub-organization-name and ub-common-name are 64 characters;
    # the root's common name adds " Root".
    if len(organization) > 64 or len(common_name) > 64 - len(" Root"):
        raise ConfigInvalidError("TSA organization or common name is too long",
                                 expected="organization <= 64, common name <= 59 characters")
    if leaf_curve not in _CURVES:
        raise ConfigInvalidError("unsupported TSA leaf curve", actual=leaf_curve,
                                 expected=sorted(_CURVES))
    if validity <= timedelta(0):
        raise ConfigInvalidError("TSA validity must be positive", actual=str(validity))
    start, end = validity_window(now, validity)

    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = distinguished_name(organization, common_name + " Root")
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root_cert = (
        # pathlen 0: the root certifies TSA leaves directly, never another CA.
        ca_certificate_builder(root_name, root_name, root_key.public_key(), start, end,
                               path_length=0)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA384())
    )

    leaf_key = ec.generate_private_key(_CURVES[leaf_curve]())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(distinguished_name(organization, common_name))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # The leaf only signs timestamps.
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        # SPEC: RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, and it MUST be critical.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                       critical=False)
        .sign(root_key, hashes.SHA384())
    )
    return TSAMaterial(root_key=root_key, root_cert=root_cert, leaf_key=leaf_key,
                       leaf_cert=leaf_cert)


def load_tsa(keys_dir: str | os.PathLike[str], certs_dir: str | os.PathLike[str], *,
             passphrase: bytes | None = None, with_root_key: bool = False) -> TSAMaterial:
    """Load what :meth:`TSAMaterial.save` wrote and check that it fits together.

    The root private key is loaded only when ``with_root_key`` (issuing a new leaf needs it;
    serving timestamps does not). Raises :class:`~sealtrail.errors.ConfigInvalidError` for
    missing, unsafe or inconsistent files and :class:`~sealtrail.errors.KeyMalformedError`
    for a key that does not parse (or a wrong passphrase).
    """
    keys = Path(keys_dir)
    chain = load_chain_pem(Path(certs_dir) / CHAIN_FILE)
    if len(chain) != 2:
        raise ConfigInvalidError("TSA chain must hold the leaf and the root", actual=len(chain),
                                 expected=2)
    leaf_cert, root_cert = chain
    leaf_key = _require_ec(load_private_key(keys / LEAF_KEY_FILE, passphrase=passphrase),
                           LEAF_KEY_FILE)
    if leaf_key.public_key() != leaf_cert.public_key():
        raise ConfigInvalidError(f"{LEAF_KEY_FILE} does not match the TSA leaf certificate")
    try:
        leaf_cert.verify_directly_issued_by(root_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise ConfigInvalidError("TSA leaf certificate is not issued by the TSA root") from exc
    root_key = None
    if with_root_key:
        root_key = _require_ec(load_private_key(keys / ROOT_KEY_FILE, passphrase=passphrase),
                               ROOT_KEY_FILE)
        if root_key.public_key() != root_cert.public_key():
            raise ConfigInvalidError(f"{ROOT_KEY_FILE} does not match the TSA root certificate")
    return TSAMaterial(root_key=root_key, root_cert=root_cert, leaf_key=leaf_key,
                       leaf_cert=leaf_cert)


def load_private_key(path: str | os.PathLike[str], *,
                     passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a PEM private key written by :func:`write_private_key`; it must be ECDSA."""
    return _require_ec(_load_private_key(path, passphrase=passphrase), Path(path).name)


def load_chain_pem(path: str | os.PathLike[str]) -> tuple[x509.Certificate, ...]:
    """Read a PEM certificate chain (leaf first)."""
    return load_certificates(path, count=(1, MAX_CHAIN_CERTS))


# -- helpers -------------------------------------------------------------------------------

def _require_ec(key: object, what: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in (
            "secp256r1", "secp384r1"):
        raise KeyMalformedError(f"{what} is not an ECDSA P-256 or P-384 private key",
                                actual=type(key).__name__)
    return key
