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

import httpx

from sealtrail.errors import LogError
from sealtrail.log.proofs import inclusion_proof_from_tiles
from sealtrail.merkle.tiles import TILE_WIDTH, decode_entry_bundle, entries_path
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.models.trusted_root import TrustedRoot

__all__ = ["recover_v2_entry"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def recover_v2_entry(log_url: str, index: int, trusted_root: TrustedRoot,
                     http: httpx.Client) -> dict[str, Any]:
    """The bundle ``tlogEntries`` item for entry ``index`` of the Rekor v2 log at ``log_url``."""
    base = log_url.rstrip("/")

    def fetch(path: str) -> bytes:
        try:
            response = http.get(f"{base}/{path}")
        except httpx.HTTPError as exc:
            raise LogError(f"cannot read {path} from the log at {base}: {exc}") from exc
        if response.status_code != 200:
            raise LogError(f"the log at {base} has no {path} (HTTP {response.status_code})")
        return response.content

    note = fetch("checkpoint").decode("utf-8", "replace")
    checkpoint = Checkpoint.from_body(SignedNote.from_text(note).body)
    if index >= checkpoint.size:
        raise LogError("the log's checkpoint does not cover the existing entry yet",
                       actual=checkpoint.size, expected=f"> {index}")
    tile = index // TILE_WIDTH
    width = None if (tile + 1) * TILE_WIDTH <= checkpoint.size else checkpoint.size - tile * TILE_WIDTH
    body = decode_entry_bundle(fetch(entries_path(tile, width)))[index % TILE_WIDTH]
    proof = inclusion_proof_from_tiles(fetch, index, checkpoint.size)
    logs = [log for log in trusted_root.tlogs if log.base_url.rstrip("/") == base]
    if not logs:
        raise LogError(f"the trusted root does not list the log at {base}")
    kind = json.loads(body)
    return {
        "logIndex": str(index),
        "logId": {"keyId": _b64(logs[0].log_id)},
        "kindVersion": {"kind": kind["kind"], "version": kind["apiVersion"]},
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
