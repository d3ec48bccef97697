"""Detached signatures (cosign's `.sig` + `.pem` layout): find the log entry, make a bundle.

A detached pair carries no proof that it was logged. Like cosign, we ask the Rekor v1 log for
the entry that records exactly this digest, signature and certificate, and assemble a bundle
from it; the bundle is then verified offline like any other. This is the one verification
step that needs the network, and the CLI says so.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import (
    InputError,
    LogError,
    ServiceUnavailableError,
    SignatureInvalidError,
    TlogEntryMismatchError,
)
from sealtrail.net.http import HttpClient, RetryPolicy, http_client
from sealtrail.clients.rekor import MAX_LOG_RESPONSE_BYTES, tlog_entry_from_v1

__all__ = ["bundle_from_detached", "read_detached_signature"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TIMEOUT = 30.0


def read_detached_signature(text: bytes) -> bytes:
    """A `.sig` file: base64 of the signature (cosign's layout), whitespace tolerated."""
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("signature file is not base64") from exc


def bundle_from_detached(digest: bytes, signature: bytes, certificate: x509.Certificate,
                         rekor_url: str, *, http: HttpClient | None = None) -> dict[str, Any]:
    """The v0.3 bundle for a detached (digest, signature, certificate), from the log's entry.

    Raises :class:`SignatureInvalidError` when the signature does not cover ``digest`` (checked
    offline, first), :class:`TlogEntryMismatchError` when the log holds no such entry and
    :class:`LogError` when it cannot be asked.
    """
    # Offline first: a signature that does not cover this artifact needs no log look-up.
    key = PublicKey.from_key(certificate.public_key(), None, SignatureInvalidError)
    if not key.verify_digest(signature, digest, "sha256"):
        raise SignatureInvalidError("the detached signature does not verify over this artifact "
                                    "with the certificate's key",
                                    actual=f"sha256:{digest.hex()}")
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    proposed = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        "signature": {"content": base64.b64encode(signature).decode(),
                      "publicKey": {"content": base64.b64encode(pem).decode()}}}}
    # One attempt, as before: a search that fails is reported, not repeated.
    client = http or http_client(RetryPolicy(attempts=1, timeout=TIMEOUT))
    url = rekor_url.rstrip("/") + "/api/v1/log/entries/retrieve"
    try:
        response = client.request(
            "POST", url, body=json.dumps({"entries": [proposed]}, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            service=f"the log at {rekor_url}", limit=MAX_LOG_RESPONSE_BYTES)
    except ServiceUnavailableError as exc:
        # "cannot reach the log at ...", "... did not answer in time": a log failure.
        raise LogError(exc.message, expected=exc.expected, actual=exc.actual) from exc
    finally:
        if http is None:
            client.close()
    if response.status != 200:
        raise LogError(f"the log at {rekor_url} could not search its entries "
                       f"(HTTP {response.status})")
    try:
        found = response.json()
    except ValueError as exc:
        raise LogError("the log's answer is not JSON") from exc
    if not isinstance(found, list) or not found:
        raise TlogEntryMismatchError(
            f"the log at {rekor_url} holds no entry for this signature and certificate",
            actual=f"sha256:{digest.hex()}")
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(
                certificate.public_bytes(serialization.Encoding.DER)).decode()},
            "tlogEntries": [tlog_entry_from_v1(found[0])],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()},
            "signature": base64.b64encode(signature).decode(),
        },
    }
