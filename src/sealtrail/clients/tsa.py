"""Client for an RFC 3161 timestamp authority (sigstore timestamp-authority API).

``TSAClient(url).timestamp(data)`` sends a DER ``TimeStampReq`` over SHA-256(data), with a
fresh nonce and ``certReq`` set, to the full endpoint URL of the signing config, and returns
the DER ``TimeStampResp`` that bundles store. The answer is checked before it is returned:
status granted, a token that parses, and a messageImprint and nonce equal to what was asked.
Whether the TSA is trusted is the verifier's business (the signer verifies every bundle
against its trusted root before handing it out).

SPEC: RFC 3161 §2.4.1 (TimeStampReq), §2.4.2 (TimeStampResp, PKIStatus); sigstore-wire.md §5.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat import asn1

from sealtrail.errors import TimestampInvalidError, TimestampRequestInvalidError, ServiceUnavailableError
from sealtrail.models import _cms_asn1 as g
from sealtrail.models.rfc3161 import MAX_TOKEN_BYTES, TST_INFO_OID
from sealtrail.net.http import HttpClient, http_client, service_message

__all__ = ["QUERY_MEDIA_TYPE", "TSAClient", "TimestampReply", "build_request", "check_reply"]

QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"
# The reply wraps the token in a few more bytes of status.
MAX_REPLY_BYTES = MAX_TOKEN_BYTES + 4096
NONCE_BITS = 63
# SPEC: RFC 3161 §2.4.2: PKIStatus granted (0) and grantedWithMods (1) carry a token.
_GRANTED = (0, 1)
SIGNED_DATA_OID = g.ID_SIGNED_DATA.dotted_string  # SPEC: RFC 5652 §5.1 id-signedData


class TimestampReply(NamedTuple):
    """A checked TSA answer: the DER ``TimeStampResp`` and what its token states."""

    der: bytes
    hash_algorithm: str
    hashed_message: bytes
    nonce: int | None


def build_request(data: bytes, nonce: int, hash_name: str = "sha256") -> bytes:
    """A DER ``TimeStampReq`` for ``hash_name(data)`` with ``nonce`` and certReq=TRUE.

    SPEC: RFC 3161 §2.4.1; sigstore-python sends exactly this shape (nonce, certReq) and
    sigstore-wire.md §5 says the TSA rejects SHA-1.
    """
    if hash_name not in g.SHA2_ALGORITHMS:
        raise TimestampRequestInvalidError("unsupported timestamp hash", actual=hash_name,
                                           expected="sha256, sha384 or sha512")
    return asn1.encode_der(g.TimeStampReq(
        version=1,
        message_imprint=g.MessageImprint(hash_algorithm=g.SHA2_ALGORITHMS[hash_name],
                                         hashed_message=hashlib.new(hash_name, data).digest()),
        req_policy=None,
        nonce=nonce,
        cert_req=True,
        extensions=None,
    ))


def _status_text(raw_status: asn1.TLV, status: int) -> str:
    parts = [str(g.PKI_STATUS_NAMES.get(status, status))]
    try:
        info = raw_status.parse(g.PKIStatusInfo)
    except ValueError:  # a malformed optional part: the status suffices
        return parts[0]
    parts.extend(info.status_string[:3] if info.status_string else [])
    if info.fail_info is not None:
        octets = info.fail_info.as_bytes()
        # SPEC: X.690 §8.6: bit 0 is the most significant bit of the first octet.
        bits = [i for i in range(len(octets) * 8 - info.fail_info.padding_bits())
                if octets[i // 8] & (0x80 >> (i % 8))]
        if bits:
            parts.append("failure: " + ", ".join(
                sorted(g.PKI_FAILURE_NAMES.get(bit, str(bit)) for bit in bits)))
    return "; ".join(parts)[:300]


def check_reply(der: bytes, data: bytes, nonce: int, hash_name: str = "sha256",
                service: str = "the TSA") -> TimestampReply:
    """Check a DER ``TimeStampResp`` against the request it answers.

    Raises :class:`TimestampInvalidError` if the answer does not parse, its status is not
    granted, its token is not a SignedData over a TSTInfo, or the TSTInfo's messageImprint
    or nonce differ from the request's. The token's signature and certificates are left to
    the verifier, which checks them against the trusted root (the signer verifies every
    bundle before returning it); parsing only what is checked here keeps this cheap.
    """
    E = TimestampInvalidError
    if len(der) > MAX_REPLY_BYTES:
        raise E(f"{service} answer is too large", actual=len(der),
                expected=f"<= {MAX_REPLY_BYTES} bytes")
    try:
        # SPEC: RFC 3161 §2.4.2: TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
        # timeStampToken OPTIONAL }. Read as its two raw elements first, so that a refusal
        # is reported from its status whatever else it carries.
        outline = asn1.decode_der(g.TokenOrResponse, der)
        if isinstance(outline.first, x509.ObjectIdentifier):
            raise E(f"{service} answer is not a valid TimeStampResp: it is a bare token")
        status = outline.first.parse(g.PKIStatusHead).status
        granted = status in _GRANTED
        # What the granted token says; None when the TSA refused (reported below).
        imprint_seen: tuple[str, bytes, int | None] | None = None
        if granted:
            token = outline.second
            if not isinstance(token, asn1.TLV):
                raise E(f"{service} granted the request but sent no token")
            content_info = token.parse(g.ContentInfo)
            if content_info.content_type != g.ID_SIGNED_DATA:
                raise E(f"{service} token is not a CMS SignedData",
                        actual=content_info.content_type.dotted_string,
                        expected=SIGNED_DATA_OID)
            encap = content_info.content.parse(g.SignedData).encap_content_info
            if encap.e_content_type != g.ID_CT_TST_INFO:
                raise E(f"{service} token does not hold a TSTInfo",
                        actual=encap.e_content_type.dotted_string, expected=TST_INFO_OID)
            if not isinstance(encap.e_content, bytes):
                raise E(f"{service} token content is not a TSTInfo")
            tst_info = asn1.decode_der(g.TSTInfo, encap.e_content)
            imprint = tst_info.message_imprint
            imprint_seen = ((g.DIGEST_NAMES.get(imprint.hash_algorithm.algorithm)
                             or imprint.hash_algorithm.algorithm.dotted_string),
                            imprint.hashed_message, tst_info.nonce)
    except TimestampInvalidError:
        raise
    # The codec raises ValueError on anything that is not DER of this grammar.
    except (ValueError, TypeError, OverflowError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise E(f"{service} answer is not a valid TimeStampResp: {detail}") from exc
    if imprint_seen is None:  # not granted
        raise E(f"{service} refused to timestamp: {_status_text(outline.first, status)}",
                actual=g.PKI_STATUS_NAMES.get(status, status), expected="granted")
    algorithm, hashed, got_nonce = imprint_seen
    # SPEC: RFC 3161 §2.4.2: the requester MUST check that messageImprint and nonce are the
    # ones it sent (the nonce binds this answer to this request).
    expected = hashlib.new(hash_name, data).digest()
    if algorithm != hash_name or hashed != expected:
        raise E(f"{service} timestamped something else than the signature",
                actual=f"{algorithm}:{hashed.hex()}",
                expected=f"{hash_name}:{expected.hex()}")
    if got_nonce != nonce:
        raise E(f"{service} answered with another nonce than the request's",
                actual=got_nonce, expected=nonce)
    return TimestampReply(der, algorithm, hashed, got_nonce)


class TSAClient:
    """POST DER timestamp requests to a timestamp authority's full endpoint URL."""

    def __init__(self, url: str, client: HttpClient | None = None) -> None:
        self.url = url
        self._client = client or http_client()
        self._owns_client = client is None

    @property
    def service(self) -> str:
        """How errors name this TSA."""
        return f"the TSA at {self.url}"

    def timestamp(self, data: bytes, *, hash_name: str = "sha256",
                  nonce: int | None = None) -> TimestampReply:
        """Timestamp ``data`` (the signature bytes, for Sigstore bundles).

        Raises :class:`TimestampRequestInvalidError` when the TSA refuses the request (HTTP
        4xx), :class:`TimestampInvalidError` for a refused or mismatched answer, and
        :class:`ServiceUnavailableError` when the TSA is unreachable or failing.
        """
        if nonce is None:
            nonce = secrets.randbits(NONCE_BITS) | 1  # positive, never zero
        status, _headers, body = self._client.request(
            "POST", self.url, body=build_request(data, nonce, hash_name),
            headers={"Content-Type": QUERY_MEDIA_TYPE, "Accept": REPLY_MEDIA_TYPE},
            service=self.service, limit=MAX_REPLY_BYTES)
        if 400 <= status < 500:
            raise TimestampRequestInvalidError(
                f"{self.service} refused the request: {service_message(body)}",
                actual=f"HTTP {status}")
        if status not in (200, 201):
            raise ServiceUnavailableError(f"{self.service} failed: {service_message(body)}",
                                          actual=f"HTTP {status}")
        return check_reply(body, data, nonce, hash_name, self.service)

    def close(self) -> None:
        """Release the connections if this client created the HTTP client."""
        if self._owns_client:
            self._client.close()
