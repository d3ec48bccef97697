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

from asn1crypto import algos, cms, core, tsp

from sealtrail.errors import TimestampInvalidError, TimestampRequestInvalidError, ServiceUnavailableError
from sealtrail.models.rfc3161 import MAX_TOKEN_BYTES, TST_INFO_OID
from sealtrail.transport._http import HttpClient, http_client, service_message

__all__ = ["QUERY_MEDIA_TYPE", "TSAClient", "TimestampReply", "build_request", "check_reply"]

QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"
# The reply wraps the token in a few more bytes of status.
MAX_REPLY_BYTES = MAX_TOKEN_BYTES + 4096
NONCE_BITS = 63
_GRANTED = ("granted", "granted_with_mods")
SIGNED_DATA_OID = "1.2.840.113549.1.7.2"  # SPEC: RFC 5652 §5.1 id-signedData


class TimestampReply(NamedTuple):
    """A checked TSA answer: the DER ``TimeStampResp`` and what its token states."""

    der: bytes
    hash_algorithm: str
    hashed_message: bytes
    nonce: int | None


_ALGORITHM_DER = {name: algos.DigestAlgorithm({"algorithm": name}).dump()
                  for name in ("sha256", "sha384", "sha512")}


def build_request(data: bytes, nonce: int, hash_name: str = "sha256") -> bytes:
    """A DER ``TimeStampReq`` for ``hash_name(data)`` with ``nonce`` and certReq=TRUE.

    SPEC: RFC 3161 §2.4.1; sigstore-python sends exactly this shape (nonce, certReq) and
    sigstore-wire.md §5 says the TSA rejects SHA-1.
    """
    if hash_name not in ("sha256", "sha384", "sha512"):
        raise TimestampRequestInvalidError("unsupported timestamp hash", actual=hash_name,
                                           expected="sha256, sha384 or sha512")
    # The AlgorithmIdentifier is loaded from bytes encoded once: building it from a dict
    # costs asn1crypto more than the rest of the request (the signer sends one per file).
    imprint = tsp.MessageImprint({
        "hash_algorithm": algos.DigestAlgorithm.load(_ALGORITHM_DER[hash_name]),
        "hashed_message": hashlib.new(hash_name, data).digest()})
    return tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": imprint,
        "nonce": nonce,
        "cert_req": True,
    }).dump()


def _status_text(status: tsp.PKIStatusInfo) -> str:
    parts = [str(status["status"].native)]
    try:
        texts = status["status_string"].native or []
        parts.extend(str(t) for t in texts[:3])
        failure = status["fail_info"].native
        if failure:
            parts.append("failure: " + ", ".join(sorted(str(f) for f in failure)))
    except (ValueError, TypeError, KeyError):  # a malformed optional part: the status suffices
        pass
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
        # timeStampToken OPTIONAL }. asn1crypto's spec makes the token mandatory, so the
        # outer SEQUENCE is split by hand (a refusal carries no token).
        outer = core.Sequence.load(der, strict=True)
        if not 1 <= len(outer) <= 2:
            raise E(f"{service} answer is not a TimeStampResp", actual=f"{len(outer)} fields")
        status = tsp.PKIStatusInfo.load(outer[0].dump())
        granted = status["status"].native in _GRANTED
        if granted:
            if len(outer) < 2:
                raise E(f"{service} granted the request but sent no token")
            token = cms.ContentInfo.load(outer[1].dump())
            if token["content_type"].dotted != SIGNED_DATA_OID:
                raise E(f"{service} token is not a CMS SignedData",
                        actual=token["content_type"].dotted, expected=SIGNED_DATA_OID)
            content = token["content"]["encap_content_info"]
            if content["content_type"].dotted != TST_INFO_OID:
                raise E(f"{service} token does not hold a TSTInfo",
                        actual=content["content_type"].dotted, expected=TST_INFO_OID)
            tst_info = content["content"].parsed
            if not isinstance(tst_info, tsp.TSTInfo):
                raise E(f"{service} token content is not a TSTInfo")
            imprint = tst_info["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            hashed = imprint["hashed_message"].native
            got_nonce = tst_info["nonce"].native
    except TimestampInvalidError:
        raise
    # asn1crypto parses lazily and raises these from deep inside on malformed input.
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise E(f"{service} answer is not a valid TimeStampResp: {detail}") from exc
    if not granted:
        raise E(f"{service} refused to timestamp: {_status_text(status)}",
                actual=status["status"].native, expected="granted")
    # SPEC: RFC 3161 §2.4.2: the requester MUST check that messageImprint and nonce are the
    # ones it sent (the nonce binds this answer to this request).
    expected = hashlib.new(hash_name, data).digest()
    if algorithm != hash_name or hashed != expected:
        raise E(f"{service} timestamped something else than the signature",
                actual=f"{algorithm}:{hashed.hex() if isinstance(hashed, bytes) else hashed}",
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
