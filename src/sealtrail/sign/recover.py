"""Recover a Rekor v2 entry whose creation answer was lost.

A retried ``POST /api/v2/log/entries`` whose first attempt did reach the log gets 409 with the
existing index (``x-log-index``). Rekor v2 has no entry read API, so the entry is rebuilt the
way a monitor reads a log: the signed checkpoint, the entry bundle tile holding the body, and
an inclusion proof computed from the public hash tiles. The result is checked like any other
entry when the bundle is verified, so nothing here needs to be trusted.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sealtrail.errors import InputError, LogError, ServiceUnavailableError
from sealtrail.merkle.tile_proofs import inclusion_proof_from_tiles
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    MAX_ENTRY_SIZE,
    TILE_BYTES,
    TILE_WIDTH,
    decode_entry_bundle,
    entries_path,
)
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.net.http import HttpClient

__all__ = ["recover_v2_entry"]

# What each read may return at most (SPEC: C2SP tlog-tiles: 256 hashes per tile, 256
# u16-length-prefixed entries per bundle; a checkpoint is a few lines plus signatures).
MAX_CHECKPOINT_BYTES = 1024 * 1024
MAX_ENTRY_BUNDLE_BYTES = ENTRY_BUNDLE_WIDTH * (2 + MAX_ENTRY_SIZE)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def recover_v2_entry(log_url: str, index: int, trusted_root: TrustedRoot,
                     http: HttpClient) -> dict[str, Any]:
    """The bundle ``tlogEntries`` item for entry ``index`` of the Rekor v2 log at ``log_url``.

    Raises :class:`LogError` when the log cannot be read or what it serves does not hold the
    entry; the result is checked against the trusted root when the bundle is verified.
    """
    base = log_url.rstrip("/")

    def fetch(path: str) -> bytes:
        if path.startswith("tile/entries/"):
            limit = MAX_ENTRY_BUNDLE_BYTES
        elif path.startswith("tile/"):
            limit = TILE_BYTES
        else:
            limit = MAX_CHECKPOINT_BYTES
        try:
            response = http.request("GET", f"{base}/{path}", service=f"the log at {base}",
                                    limit=limit)
        except ServiceUnavailableError as exc:
            raise LogError(f"cannot read {path} from the log at {base}: {exc.message}",
                           expected=exc.expected, actual=exc.actual) from exc
        if response.status != 200:
            raise LogError(f"the log at {base} has no {path} (HTTP {response.status})")
        return response.body

    note = fetch("checkpoint").decode("utf-8", "replace")
    checkpoint = Checkpoint.from_body(SignedNote.from_text(note).body)
    if index >= checkpoint.size:
        raise LogError("the log's checkpoint does not cover the existing entry yet",
                       actual=checkpoint.size, expected=f"> {index}")
    tile = index // TILE_WIDTH
    width = None if (tile + 1) * TILE_WIDTH <= checkpoint.size else checkpoint.size - tile * TILE_WIDTH
    try:
        body = decode_entry_bundle(fetch(entries_path(tile, width)),
                                   width or ENTRY_BUNDLE_WIDTH)[index % TILE_WIDTH]
        proof = inclusion_proof_from_tiles(fetch, index, checkpoint.size)
    except InputError as exc:
        raise LogError(f"the log at {base} serves a malformed tile: {exc.message}",
                       expected=exc.expected, actual=exc.actual) from exc
    logs = [log for log in trusted_root.tlogs if log.base_url.rstrip("/") == base]
    if not logs:
        raise LogError(f"the trusted root does not list the log at {base}")
    try:
        kind = json.loads(body)
        kind_version = {"kind": kind["kind"], "version": kind["apiVersion"]}
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise LogError(f"entry {index} of the log at {base} is not a log entry body") from exc
    return {
        "logIndex": str(index),
        "logId": {"keyId": _b64(logs[0].log_id)},
        "kindVersion": kind_version,
        "integratedTime": "0",
        "inclusionProof": {
            "logIndex": str(index),
            "rootHash": _b64(checkpoint.root_hash),
            "treeSize": str(checkpoint.size),
            "hashes": [_b64(h) for h in proof],
            "checkpoint": {"envelope": note},
        },
        "canonicalizedBody": _b64(body),
    }
