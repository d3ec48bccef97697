"""The four TUF role keys of an instance: generate, save (PEM, 0600), load, and sign with them.

One key per top-level role, threshold 1. ECDSA P-256 (``ecdsa-sha2-nistp256``, what the
public-good Sigstore repository uses) or Ed25519. Signing goes through securesystemslib's
``CryptoSigner`` so the signatures are exactly what python-tuf clients verify.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sealtrail._internal.keyfiles import write_atomic
from sealtrail.errors import ConfigInvalidError, KeyMalformedError, UsageError

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner, SSlibKey

__all__ = ["KEY_ALGORITHMS", "KEY_FILES", "ROLES", "RepoKeys"]

# The four top-level TUF roles, root first.
ROLES = ("root", "targets", "snapshot", "timestamp")

# File names inside an instance's keys/ directory (docs/instance.md).
KEY_FILES = {role: f"tuf-{role}.pem" for role in ROLES}

# Supported key algorithms and the TUF signature scheme each one signs with.
KEY_ALGORITHMS = {"ecdsa-p256": "ecdsa-sha2-nistp256", "ed25519": "ed25519"}

# A PEM private key is a few hundred bytes; refuse to read anything much larger.
_MAX_PEM_BYTES = 64 * 1024

PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]


def _scheme_of(key: PrivateKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return KEY_ALGORITHMS["ed25519"]
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return KEY_ALGORITHMS["ecdsa-p256"]
    raise KeyMalformedError("TUF role keys must be ECDSA P-256 or Ed25519",
                            actual=type(key).__name__)


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600)."""
    write_atomic(path, data, 0o600)


class RepoKeys:
    """The private keys of the four top-level TUF roles of one repository.

    Build with :meth:`generate` or :meth:`load`; the constructor takes
    ``cryptography`` private keys (ECDSA P-256 or Ed25519) and raises
    :class:`~sealtrail.errors.KeyMalformedError` for any other type.
    """

    def __init__(self, *, root: PrivateKey, targets: PrivateKey, snapshot: PrivateKey,
                 timestamp: PrivateKey) -> None:
        self._keys: dict[str, PrivateKey] = {
            "root": root, "targets": targets, "snapshot": snapshot, "timestamp": timestamp}
        self._schemes = {role: _scheme_of(key) for role, key in self._keys.items()}
        self._signers: dict[str, CryptoSigner] = {}

    @classmethod
    def generate(cls, algorithm: str = "ecdsa-p256") -> RepoKeys:
        """Four fresh, distinct keys (``algorithm``: ``"ecdsa-p256"`` or ``"ed25519"``)."""
        if algorithm not in KEY_ALGORITHMS:
            raise UsageError("unsupported TUF key algorithm", actual=algorithm,
                             expected=" or ".join(KEY_ALGORITHMS))

        def new() -> PrivateKey:
            if algorithm == "ed25519":
                return ed25519.Ed25519PrivateKey.generate()
            return ec.generate_private_key(ec.SECP256R1())

        return cls(root=new(), targets=new(), snapshot=new(), timestamp=new())

    @classmethod
    def from_mapping(cls, keys: Mapping[str, PrivateKey]) -> RepoKeys:
        """Build from ``{role: private key}`` with exactly the four top-level roles."""
        if set(keys) != set(ROLES):
            raise UsageError("TUF keys must be given for exactly the four top-level roles",
                             actual=sorted(keys), expected=list(ROLES))
        return cls(root=keys["root"], targets=keys["targets"], snapshot=keys["snapshot"],
                   timestamp=keys["timestamp"])

    def replace(self, **keys: PrivateKey) -> RepoKeys:
        """A copy with some roles' keys replaced, e.g. ``keys.replace(timestamp=new)``."""
        unknown = set(keys) - set(ROLES)
        if unknown:
            raise UsageError("unknown TUF role", actual=sorted(unknown), expected=list(ROLES))
        merged = dict(self._keys)
        merged.update(keys)
        return RepoKeys.from_mapping(merged)

    def private_key(self, role: str) -> PrivateKey:
        """The ``cryptography`` private key of ``role``."""
        self._check_role(role)
        return self._keys[role]

    def signer(self, role: str) -> CryptoSigner:
        """A securesystemslib signer for ``role`` (its key id is the TUF default key id)."""
        self._check_role(role)
        signer = self._signers.get(role)
        if signer is None:
            from securesystemslib.signer import CryptoSigner, SSlibKey

            key = self._keys[role]
            public = SSlibKey.from_crypto(key.public_key(), scheme=self._schemes[role])
            signer = CryptoSigner(key, public)
            self._signers[role] = signer
        return signer

    def public_key(self, role: str) -> SSlibKey:
        """The TUF public key (``keytype``/``scheme``/``keyval``) of ``role``."""
        return self.signer(role).public_key

    def keyid(self, role: str) -> str:
        """The TUF key id of ``role``'s key (hex SHA-256 of its canonical JSON)."""
        return self.public_key(role).keyid

    def save(self, directory: str | os.PathLike[str], *, password: bytes | None = None) -> None:
        """Write ``tuf-<role>.pem`` (PKCS#8 PEM, 0600) into ``directory`` (created 0700).

        With ``password`` the PEM files are encrypted (best available PKCS#8 encryption).
        Existing files of the same names are replaced atomically.
        """
        path = os.fspath(directory)
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            for role in ROLES:
                encryption: serialization.KeySerializationEncryption
                if password:
                    encryption = serialization.BestAvailableEncryption(password)
                else:
                    encryption = serialization.NoEncryption()
                pem = self._keys[role].private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     encryption)
                _write_private(os.path.join(path, KEY_FILES[role]), pem)
        except OSError as exc:
            raise ConfigInvalidError(f"cannot write TUF keys to {path}: {exc.strerror}") from exc

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, password: bytes | None = None) -> RepoKeys:
        """Read the four ``tuf-<role>.pem`` files written by :meth:`save`.

        Raises :class:`~sealtrail.errors.ConfigInvalidError` if a file is missing or
        unreadable and :class:`~sealtrail.errors.KeyMalformedError` if one is not a
        supported private key (or the password is wrong).
        """
        path = os.fspath(directory)
        keys: dict[str, PrivateKey] = {}
        for role in ROLES:
            file = os.path.join(path, KEY_FILES[role])
            try:
                with open(file, "rb") as handle:
                    mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                    pem = handle.read(_MAX_PEM_BYTES + 1)
            except OSError as exc:
                raise ConfigInvalidError(f"cannot read TUF {role} key {file}: {exc.strerror}") \
                    from exc
            if len(pem) > _MAX_PEM_BYTES:
                raise KeyMalformedError(f"TUF {role} key {file} is too large",
                                        actual=len(pem), expected=f"<= {_MAX_PEM_BYTES}")
            # As for the CA key (and as ssh does): a key others may read is refused.
            if os.name == "posix" and mode & 0o077:
                raise ConfigInvalidError(f"private key {KEY_FILES[role]} is readable by others",
                                         actual=oct(mode), expected="0o600")
            try:
                key = serialization.load_pem_private_key(pem, password=password)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise KeyMalformedError(f"TUF {role} key {file} cannot be loaded "
                                        "(not a PEM private key, or wrong password)") from exc
            if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
                raise KeyMalformedError(f"TUF {role} key {file} is not ECDSA P-256 or Ed25519",
                                        actual=type(key).__name__)
            keys[role] = key
        return cls.from_mapping(keys)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise UsageError("unknown TUF role", actual=role, expected=list(ROLES))

    def __repr__(self) -> str:
        # Never show key material.
        ids = ", ".join(f"{role}={self.keyid(role)[:8]}" for role in ROLES)
        return f"RepoKeys({ids})"
