"""Detached signatures (cosign's `.sig` + `.pem` layout): find the log entry, make a bundle.

A detached pair carries no proof that it was logged. Like cosign, we ask the transparency
logs for the entry that records exactly this digest, signature and certificate, and assemble
a bundle from it; the bundle is then verified offline like any other. This is the one
verification step that needs the network, and the CLI says so.

Which logs: every log the signing configuration offers (Rekor v1 and v2), in order, until one
holds the entry:

- Rekor v1 (the public-good instance, private Rekor deployments, sealtrail instances): the
  search index (``POST /api/v1/index/retrieve`` by the artifact's SHA-256), then the entries
  it names (``POST /api/v1/log/entries/retrieve``), each compared with the pair; a log
  without a search index is asked for the exact entry instead (``retrieve`` with
  ``entries``), as sealtrail did before.
- Rekor v2 on sealtrail instances: ``GET <log>/api/v2/log/search?sha256=``, then the entry
  from the log's public tiles (entry bundle, checkpoint, inclusion proof built from the hash
  tiles). rekor-tiles offers no search; such a log is skipped, and said so.

SPEC: sigstore-wire.md §3 (Rekor v1 entries and search) and §4 (Rekor v2 entries, tiles).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealtrail.clients.rekor import MAX_RETRIEVE, RekorV1Client, RekorV2Client, tlog_entry_from_v1
from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import (
    Error,
    InputError,
    LogError,
    SignatureInvalidError,
    TlogEntryNotFoundError,
    TlogKeyUnknownError,
)
from sealtrail.merkle.tile_proofs import inclusion_proof_from_tiles
from sealtrail.merkle.tiles import ENTRY_BUNDLE_WIDTH, decode_entry_bundle, entries_path
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.net.http import HttpClient, RetryPolicy, http_client

__all__ = ["DetachedLookup", "LogRef", "check_detached_signature",
           "find_detached_entry", "lookup_client", "read_detached_certificate",
           "read_detached_signature"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TIMEOUT = 30.0
# Entries filed under one digest that are fetched and compared, per log: a popular artifact
# may be signed many times, but the look-up stays bounded (10 retrieve calls).
MAX_CANDIDATES = 100


class LogRef(NamedTuple):
    """A transparency log to search: its URL and Rekor API version (1 or 2)."""

    url: str
    version: int


class DetachedLookup(NamedTuple):
    """What the online look-up found: the bundle and where its entry is."""

    bundle: dict[str, Any]
    log: LogRef
    log_index: int


def read_detached_signature(text: bytes) -> bytes:
    """A `.sig` file: base64 of the signature (cosign's layout), whitespace tolerated."""
    try:
        signature = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("signature file is not base64") from exc
    if not signature:
        raise InputError("signature file is empty")
    return signature


def read_detached_certificate(text: bytes) -> x509.Certificate:
    """A `.pem` file: the PEM certificate, or base64 of the PEM (what cosign's
    ``--output-certificate`` writes for blobs)."""
    data = text.strip()
    if not data.startswith(b"-----BEGIN"):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True).strip()
        except (binascii.Error, ValueError):
            raise InputError("certificate file is neither PEM nor base64 of a PEM "
                             "certificate") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InputError("certificate file does not hold a PEM certificate") from exc


def check_detached_signature(digest: bytes, signature: bytes,
                             certificate: x509.Certificate) -> None:
    """Offline, before any look-up: the signature must cover this SHA-256 ``digest`` with the
    certificate's key (:class:`SignatureInvalidError` otherwise)."""
    key = PublicKey.from_key(certificate.public_key(), None, SignatureInvalidError)
    if not key.verify_digest(signature, digest, "sha256"):
        raise SignatureInvalidError("the detached signature does not verify over this artifact "
                                    "with the certificate's key",
                                    actual=f"sha256:{digest.hex()}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


class _Pair(NamedTuple):
    digest: bytes
    signature: bytes
    certificate_der: bytes
    spki_der: bytes

    def matches_v1(self, body: Any) -> bool:
        """A hashedrekord 0.0.1 body recording exactly this pair."""
        if not isinstance(body, dict) or body.get("kind") != "hashedrekord" or \
                body.get("apiVersion") != "0.0.1":
            return False
        hashed = _get(body, "spec", "data", "hash")
        if _get(hashed, "algorithm") != "sha256" or \
                str(_get(hashed, "value")).lower() != self.digest.hex():
            return False
        if _unb64(_get(body, "spec", "signature", "content")) != self.signature:
            return False
        pem = _unb64(_get(body, "spec", "signature", "publicKey", "content"))
        if pem is None:
            return False
        try:
            logged = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return False
        return logged.public_bytes(serialization.Encoding.DER) == self.certificate_der

    def matches_v2(self, body: Any) -> bool:
        """A hashedrekord 0.0.2 body recording this pair (the certificate, or its key)."""
        if not isinstance(body, dict) or body.get("kind") != "hashedrekord" or \
                body.get("apiVersion") != "0.0.2":
            return False
        spec = _get(body, "spec", "hashedRekordV002")
        if _get(spec, "data", "algorithm") != "SHA2_256" or \
                _unb64(_get(spec, "data", "digest")) != self.digest:
            return False
        if _unb64(_get(spec, "signature", "content")) != self.signature:
            return False
        verifier = _get(spec, "signature", "verifier")
        certificate = _unb64(_get(verifier, "x509Certificate", "rawBytes"))
        key = _unb64(_get(verifier, "publicKey", "rawBytes"))
        return certificate == self.certificate_der or (certificate is None
                                                       and key == self.spki_der)


def _decode_body(encoded: Any) -> Any:
    raw = _unb64(encoded)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _search_v1(pair: _Pair, client: RekorV1Client,
               say: Callable[[str], None]) -> tuple[dict[str, Any], int] | None:
    found_ids = client.search_hash(pair.digest.hex(), MAX_CANDIDATES)
    if found_ids is None:
        say(f"the Rekor v1 log at {client.base_url} has no search index; asking it for the "
            "exact entry")
    else:
        candidates = list(dict.fromkeys(found_ids))[:MAX_CANDIDATES]
        for start in range(0, len(candidates), MAX_RETRIEVE):
            for item in client.retrieve({"entryUUIDs": candidates[start:start + MAX_RETRIEVE]}):
                entries = list(item.values())
                if len(entries) == 1 and pair.matches_v1(_decode_body(_get(entries[0], "body"))):
                    entry = tlog_entry_from_v1(item)
                    return entry, int(entry["logIndex"])
    # No index, or no candidate matched: the exact entry (a log that files entries by
    # content finds it even when its index missed it).
    pem = x509.load_der_x509_certificate(pair.certificate_der).public_bytes(
        serialization.Encoding.PEM)
    proposed = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": pair.digest.hex()}},
        "signature": {"content": _b64(pair.signature), "publicKey": {"content": _b64(pem)}}}}
    for item in client.retrieve({"entries": [proposed]}):
        entries = list(item.values())
        if len(entries) == 1 and pair.matches_v1(_decode_body(_get(entries[0], "body"))):
            entry = tlog_entry_from_v1(item)
            return entry, int(entry["logIndex"])
    return None


def _log_id_v2(url: str, origin: str, trusted_root: TrustedRoot) -> bytes:
    for log in trusted_root.tlogs:
        if log.base_url.rstrip("/") == url.rstrip("/"):
            return log.log_id
    for log in trusted_root.tlogs:
        if log.origin_name == origin:
            return log.log_id
    raise TlogKeyUnknownError(f"the log at {url} is not in the trusted root", actual=origin)


def _search_v2(pair: _Pair, client: RekorV2Client, trusted_root: TrustedRoot,
               say: Callable[[str], None]) -> tuple[dict[str, Any], int] | None:
    indexes = client.search_hash(pair.digest.hex(), MAX_CANDIDATES)
    if indexes is None:
        say(f"the Rekor v2 log at {client.base_url} offers no search (rekor-tiles does not); "
            "skipped")
        return None
    if not indexes:
        return None
    text = client.checkpoint()
    try:
        checkpoint = Checkpoint.from_body(SignedNote.from_text(text).body)
    except Error as exc:
        raise LogError(f"the checkpoint of the log at {client.base_url} does not parse: "
                       f"{exc.diagnostics()}") from exc
    size = checkpoint.size
    bundles: dict[int, list[bytes]] = {}
    for index in sorted(set(indexes))[:MAX_CANDIDATES]:
        if index >= size:
            continue  # not yet in the published tree
        number = index // ENTRY_BUNDLE_WIDTH
        if number not in bundles:
            width = min(ENTRY_BUNDLE_WIDTH, size - number * ENTRY_BUNDLE_WIDTH)
            data = client.tile(entries_path(number, None if width == ENTRY_BUNDLE_WIDTH
                                            else width))
            try:
                bundles[number] = decode_entry_bundle(data, width)
            except InputError as exc:
                raise LogError(f"the log at {client.base_url} sent a malformed entry bundle: "
                               f"{exc.diagnostics()}") from exc
        body = bundles[number][index % ENTRY_BUNDLE_WIDTH]
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        if not pair.matches_v2(parsed):
            continue
        try:
            proof = inclusion_proof_from_tiles(client.tile, index, size)
        except InputError as exc:
            raise LogError(f"the log at {client.base_url} sent a malformed tile: "
                           f"{exc.diagnostics()}") from exc
        entry = {
            "logIndex": str(index),
            "logId": {"keyId": _b64(_log_id_v2(client.base_url, checkpoint.origin,
                                               trusted_root))},
            "kindVersion": {"kind": parsed["kind"], "version": parsed["apiVersion"]},
            "integratedTime": "0",
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(checkpoint.root_hash),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": text},
            },
            "canonicalizedBody": _b64(body),
        }
        return entry, index
    return None


def lookup_client() -> HttpClient:
    """The HTTP client of look-ups: one attempt per request (a search that fails is reported,
    not repeated). Share one across many look-ups to keep connections alive; close it."""
    return http_client(RetryPolicy(attempts=1, timeout=TIMEOUT))


def find_detached_entry(digest: bytes, signature: bytes, certificate: x509.Certificate,
                        logs: Sequence[LogRef], trusted_root: TrustedRoot, *,
                        http: HttpClient | None = None,
                        say: Callable[[str], None] = lambda line: None) -> DetachedLookup:
    """The v0.3 bundle for a detached (SHA-256 digest, signature, certificate), built from
    the first of ``logs`` that holds its entry.

    The signature is checked offline first (:class:`SignatureInvalidError`: no look-up for a
    signature that does not cover this artifact). ``say`` is told, one line each, which log
    is asked (the network steps). Raises :class:`TlogEntryNotFoundError` when no log holds
    the entry, and :class:`LogError` when a log cannot be asked or answers nonsense.
    """
    check_detached_signature(digest, signature, certificate)
    if not logs:
        raise TlogEntryNotFoundError("no transparency log to search (the signing config "
                                     "offers none)")
    pair = _Pair(digest, signature, certificate.public_bytes(serialization.Encoding.DER),
                 certificate.public_key().public_bytes(
                     serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    client = http or lookup_client()
    try:
        for log in logs:
            say(f"looking up the log entry online: searching the Rekor v{log.version} log at "
                f"{log.url} for sha256:{digest.hex()}")
            if log.version == 1:
                found = _search_v1(pair, RekorV1Client(log.url, client), say)
            else:
                found = _search_v2(pair, RekorV2Client(log.url, client), trusted_root, say)
            if found is not None:
                entry, index = found
                bundle = {
                    "mediaType": BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": {
                        "certificate": {"rawBytes": _b64(pair.certificate_der)},
                        "tlogEntries": [entry],
                    },
                    "messageSignature": {
                        "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                        "signature": _b64(signature),
                    },
                }
                return DetachedLookup(bundle, log, index)
    finally:
        if http is None:
            client.close()
    searched = ", ".join(f"{log.url} (Rekor v{log.version})" for log in logs)
    raise TlogEntryNotFoundError(
        f"no transparency log holds an entry for this signature and certificate (searched "
        f"{searched})", actual=f"sha256:{digest.hex()}")

