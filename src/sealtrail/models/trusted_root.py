"""trusted_root.json: the CAs, logs, CT logs and TSAs a verifier trusts, with validity windows.

SPEC: protobuf-specs sigstore_trustroot.proto, media type
``application/vnd.dev.sigstore.trustedroot+json;version=0.1``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple, TypeVar
from urllib.parse import urlsplit

from cryptography import x509

from sealtrail._internal.encoding import (
    b64decode,
    parse_rfc3339,
    require_dict,
    require_list,
    require_str,
)
from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import TrustRootMalformedError
from sealtrail.models._json import reject_lone_surrogates

__all__ = [
    "CertificateAuthority",
    "TransparencyLog",
    "TrustedRoot",
    "ValidityWindow",
]

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
MAX_TRUSTED_ROOT_BYTES = 16 * 1024 * 1024

E = TrustRootMalformedError

_Item = TypeVar("_Item")


class ValidityWindow(NamedTuple):
    """``validFor``: a start and an optional end, both inclusive."""

    start: datetime
    end: datetime | None = None

    @classmethod
    def unbounded(cls) -> "ValidityWindow":
        """The window of a key whose ``validFor`` is absent: valid at every time."""
        return cls(datetime.min.replace(tzinfo=timezone.utc))

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` lies in the window (the end is inclusive)."""
        return self.start <= when and (self.end is None or when <= self.end)

    @classmethod
    def from_json(cls, data: Any, what: str) -> "ValidityWindow":
        data = require_dict(data, what, E)
        if "start" not in data:
            raise E(f"{what} has no start")
        start = parse_rfc3339(data["start"], f"{what}.start", E)
        end = parse_rfc3339(data["end"], f"{what}.end", E) if data.get("end") else None
        return cls(start, end)


class TransparencyLog(NamedTuple):
    """A transparency log (Rekor v1/v2) or CT log entry of the trusted root."""

    base_url: str
    key: PublicKey
    validity: ValidityWindow
    log_id: bytes  # Rekor v1 and CT: SHA-256(SPKI); Rekor v2: the checkpoint key id
    checkpoint_key_id: bytes | None = None

    @property
    def origin_name(self) -> str:
        """The signed-note key name: the hostname of ``baseUrl`` (sigstore-go rules)."""
        return urlsplit(self.base_url).hostname or self.base_url

    @classmethod
    def from_json(cls, data: Any, what: str) -> "TransparencyLog":
        data = require_dict(data, what, E)
        base_url = require_str(data.get("baseUrl", ""), f"{what}.baseUrl", E)
        hash_algorithm = data.get("hashAlgorithm", "SHA2_256")
        if hash_algorithm != "SHA2_256":
            raise E(f"{what}.hashAlgorithm is not supported", actual=hash_algorithm,
                    expected="SHA2_256")
        pk = require_dict(data.get("publicKey"), f"{what}.publicKey", E)
        raw = b64decode(pk.get("rawBytes"), f"{what}.publicKey.rawBytes", E)
        details = require_str(pk.get("keyDetails"), f"{what}.publicKey.keyDetails", E)
        key = PublicKey.from_spki_der(raw, details, E)
        # SPEC: sigstore_common.proto PublicKey: `optional TimeRange valid_for`; sigstore-go
        # treats an absent window as no bound.
        validity = (ValidityWindow.from_json(pk["validFor"], f"{what}.publicKey.validFor")
                    if pk.get("validFor") is not None else ValidityWindow.unbounded())
        log_id = b64decode(require_dict(data.get("logId"), f"{what}.logId", E).get("keyId"),
                           f"{what}.logId.keyId", E)
        checkpoint_key_id = None
        if data.get("checkpointKeyId"):
            checkpoint_key_id = b64decode(
                require_dict(data["checkpointKeyId"], f"{what}.checkpointKeyId", E).get("keyId"),
                f"{what}.checkpointKeyId.keyId", E)
        return cls(base_url, key, validity, log_id, checkpoint_key_id)


class CertificateAuthority(NamedTuple):
    """A CA (Fulcio) or TSA entry: a certificate chain and its validity window.

    For CAs the chain runs intermediates -> root; for TSAs leaf -> root. Either way
    ``chain[0]`` is the certificate closest to the signer and ``chain[-1]`` the root.
    """

    uri: str
    chain: tuple[x509.Certificate, ...]
    validity: ValidityWindow

    @classmethod
    def from_json(cls, data: Any, what: str) -> "CertificateAuthority":
        data = require_dict(data, what, E)
        uri = data.get("uri", "")
        if not isinstance(uri, str):
            raise E(f"{what}.uri must be a string")
        chain_json = require_dict(data.get("certChain"), f"{what}.certChain", E)
        certs = require_list(chain_json.get("certificates"), f"{what}.certChain.certificates", E,
                             max_items=16)
        if not certs:
            raise E(f"{what}.certChain is empty")
        chain = []
        for i, cert in enumerate(certs):
            der = b64decode(require_dict(cert, f"{what}.certChain[{i}]", E).get("rawBytes"),
                            f"{what}.certChain[{i}].rawBytes", E)
            try:
                chain.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise E(f"{what}.certChain[{i}] is not a DER certificate") from exc
        validity = ValidityWindow.from_json(data.get("validFor"), f"{what}.validFor")
        return cls(uri, tuple(chain), validity)


class TrustedRoot(NamedTuple):
    """A parsed trusted_root.json."""

    tlogs: tuple[TransparencyLog, ...]
    ctlogs: tuple[TransparencyLog, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]

    @classmethod
    def from_json(cls, text: str | bytes) -> "TrustedRoot":
        """Parse the JSON document, strictly."""
        if len(text) > MAX_TRUSTED_ROOT_BYTES:
            raise E("trusted root is too large", actual=len(text),
                    expected=f"<= {MAX_TRUSTED_ROOT_BYTES} bytes")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise E(f"trusted root is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> "TrustedRoot":
        """Build from decoded JSON."""
        reject_lone_surrogates(data, "trusted root", E)
        data = require_dict(data, "trusted root", E)
        media_type = data.get("mediaType")
        if media_type != TRUSTED_ROOT_MEDIA_TYPE:
            raise E("unsupported trusted root media type", actual=media_type,
                    expected=TRUSTED_ROOT_MEDIA_TYPE)

        def many(key: str, parse: Callable[[Any, str], _Item]) -> tuple[_Item, ...]:
            items = require_list(data.get(key, []), key, E)
            return tuple(parse(item, f"{key}[{i}]") for i, item in enumerate(items))

        return cls(
            tlogs=many("tlogs", TransparencyLog.from_json),
            ctlogs=many("ctlogs", TransparencyLog.from_json),
            certificate_authorities=many("certificateAuthorities", CertificateAuthority.from_json),
            timestamp_authorities=many("timestampAuthorities", CertificateAuthority.from_json),
        )

    def tlog_by_id(self, log_id: bytes) -> TransparencyLog | None:
        """The transparency log whose ``logId`` (or checkpoint key id) is ``log_id``."""
        for log in self.tlogs:
            if log.log_id == log_id or log.checkpoint_key_id == log_id:
                return log
        return None

    def ctlog_by_id(self, log_id: bytes) -> TransparencyLog | None:
        """The CT log whose ``logId`` is ``log_id``."""
        for log in self.ctlogs:
            if log.log_id == log_id:
                return log
        return None
