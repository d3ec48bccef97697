"""Key and certificate files: created 0600/0644 from the start, never overwritten, bounded reads.

Shared by every package that keeps keys on disk (CA, TSA, logs, OIDC issuer, TUF repository),
so the rules live in one place: a private key is never readable by others, not even briefly;
a second `init` never destroys the first; a key file others can read is refused, as ssh does.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import NameOID

from sealtrail._internal.clock import utcnow
from sealtrail.errors import ConfigInvalidError, Error, KeyMalformedError

__all__ = [
    "BACKDATE",
    "MAX_PEM_BYTES",
    "ca_certificate_builder",
    "distinguished_name",
    "load_certificates",
    "load_private_key",
    "private_key_pem",
    "read_bounded",
    "write_atomic",
    "write_certificate",
    "write_exclusive",
    "write_private_key",
    "validity_window",
]

MAX_PEM_BYTES = 256 * 1024


def write_exclusive(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` and write ``data`` durably; refuse an existing file."""
    path = os.fspath(path)
    # O_EXCL: never replace an existing key (a second `init` must not destroy the first);
    # the mode is set at creation so that a key is never readable by others, even briefly.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    except FileExistsError as exc:
        raise ConfigInvalidError(f"refusing to overwrite {path}") from exc
    except OSError as exc:
        raise ConfigInvalidError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            # The umask may have cleared bits we asked for, never added any: make it exact.
            if os.name == "posix":
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        # Leave no half-written file behind: O_EXCL would refuse the retry.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise ConfigInvalidError(f"cannot write {path}: {exc.strerror}") from exc


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, *,
                 durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: a temporary file beside it, then rename.

    Readers see the old content or the new, never a mix. ``mode`` is exact from creation
    (0o600 for secrets); ``durable`` fsyncs the data before the rename.
    """
    path = os.fspath(path)
    temporary = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), mode)  # the umask or an old temp file cannot loosen it
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_bounded(path: str | os.PathLike[str], limit: int = MAX_PEM_BYTES, *,
                 what: str | None = None, error: type[Error] = ConfigInvalidError) -> bytes:
    """Read a small file whole, refusing one larger than ``limit`` (``error`` for every
    failure; messages name the file as ``what`` when given)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        if what is None:
            raise error(f"{path} is missing") from exc
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    except OSError as exc:
        raise error(f"cannot read {what + ' ' if what else ''}{path}: {exc.strerror}") from exc
    if len(data) > limit:
        if what is None:
            raise error(f"{os.path.basename(path)} is too large", expected=f"<= {limit} bytes")
        raise error(f"{what} {path} is too large")
    return data


def private_key_pem(key: PrivateKeyTypes, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with cryptography's best available scheme when a passphrase is given."""
    if passphrase is not None and (not isinstance(passphrase, bytes) or not passphrase):
        raise ConfigInvalidError("key passphrase must be non-empty bytes")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def write_private_key(path: str | os.PathLike[str], key: PrivateKeyTypes, *,
                      passphrase: bytes | None = None) -> None:
    """Write ``key`` as PKCS#8 PEM to a new file of mode 0600 (never overwrites)."""
    write_exclusive(path, private_key_pem(key, passphrase), 0o600)


def load_private_key(path: str | os.PathLike[str], *, passphrase: bytes | None = None) -> PrivateKeyTypes:
    """Read a PEM private key written by :func:`write_private_key`.

    Refuses (:class:`ConfigInvalidError`) a file that group or others may read;
    :class:`KeyMalformedError` if it does not parse or the passphrase is wrong.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    data = read_bounded(path)
    if os.name == "posix":
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise ConfigInvalidError(f"private key {name} is readable by others",
                                     actual=oct(mode), expected="0o600")
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        # cryptography: a password for an unencrypted key, or none for an encrypted one.
        raise KeyMalformedError(f"private key {name}: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyMalformedError(f"private key {name} does not parse "
                                "(or the passphrase is wrong)") from exc


def write_certificate(path: str | os.PathLike[str], *certs: x509.Certificate) -> None:
    """Write certificates as PEM to a new file of mode 0644 (never overwrites)."""
    write_exclusive(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), 0o644)


def load_certificates(path: str | os.PathLike[str], *, count: tuple[int, int] = (1, 1)) -> tuple[x509.Certificate, ...]:
    """Read PEM certificates; their number must lie in ``count`` (inclusive bounds)."""
    name = os.path.basename(os.fspath(path))
    data = read_bounded(path)
    try:
        certs = tuple(x509.load_pem_x509_certificates(data))
    except ValueError as exc:
        raise ConfigInvalidError(f"{name} is not a PEM certificate") from exc
    low, high = count
    if not low <= len(certs) <= high:
        raise ConfigInvalidError(f"{name} holds a wrong number of certificates",
                                 actual=len(certs), expected=f"{low}..{high}" if low != high else low)
    return certs


def distinguished_name(organization: str, common_name: str) -> x509.Name:
    """O=organization, CN=common_name."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


# Certificates start a little in the past, so that a verifier whose clock lags ours by a few
# seconds does not see a not-yet-valid certificate.
BACKDATE = timedelta(minutes=5)


def validity_window(now: datetime | None, validity: timedelta) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) for a certificate made ``now`` (default: the current time):
    whole seconds, :data:`BACKDATE` earlier, for ``validity``."""
    start = (now or utcnow()).astimezone(timezone.utc).replace(microsecond=0) - BACKDATE
    return start, start + validity


def ca_certificate_builder(subject: x509.Name, issuer: x509.Name, public_key: CertificatePublicKeyTypes,
                           start: datetime, end: datetime, *,
                           path_length: int) -> x509.CertificateBuilder:
    """A builder for a CA certificate (the CA's and the TSA's roots and intermediates):
    random serial, the validity window, basicConstraints CA with ``path_length`` and
    keyUsage keyCertSign + cRLSign, both critical (RFC 5280 §4.2.1.3, §4.2.1.9)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )
