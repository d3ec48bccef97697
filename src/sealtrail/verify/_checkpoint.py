"""Checkpoint verification: a signed note whose text names the log and is signed by it.

Pure: the envelope text and the trusted-root log go in, a parsed
:class:`~sealtrail.models.checkpoint.Checkpoint` or a
:class:`~sealtrail.errors.CheckpointInvalidError` comes out. The caller then checks the
inclusion proof against ``checkpoint.root_hash`` and ``checkpoint.size``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sealtrail.errors import CheckpointInvalidError, KeyMalformedError
from sealtrail.models.checkpoint import Checkpoint, SignedNote, note_key_id
from sealtrail.models.trusted_root import TransparencyLog

__all__ = ["verify_checkpoint"]

E = CheckpointInvalidError

# SPEC: Rekor v1 pkg/util/checkpoint.go writes the origin as "<host> - <tree id>"; sigstore-go
# treats a checkpoint as Rekor v1 only if its origin matches `.* - [0-9]+$`.
_V1_ORIGIN_RE = re.compile(r"\A(.+) - ([0-9]{1,20})\Z")


def _log_names(log: TransparencyLog) -> tuple[str, ...]:
    """The key names under which ``log`` may sign.

    SPEC: the checkpoint key name is the host of the trusted root's ``baseUrl``
    (sigstore-go uses ``url.Hostname()``). Rekor v1 instances run on a non-default port
    write ``host:port`` instead (the conformance ``intoto-with-custom-trust-root`` bundle
    for ``http://localhost:8000`` is signed as ``localhost:8000``), so that spelling is
    accepted as well; sigstore-js likewise only asks the name to be part of ``baseUrl``.
    """
    names = [log.origin_name]
    try:
        port = urlsplit(log.base_url).port
    except ValueError:
        port = None
    if port is not None:
        names.append(f"{log.origin_name}:{port}")
    return tuple(names)


def _signer_name(origin: str, log: TransparencyLog) -> str:
    """Check the checkpoint origin against the log and return the key name it implies."""
    names = _log_names(log)
    if log.key.family in ("ed25519", "ed25519ph"):
        # SPEC: rekor-tiles / C2SP tlog-checkpoint: a Rekor v2 origin is exactly the log's
        # name, with no tree id.
        if origin in names:
            return origin
        raise E("checkpoint origin does not name the log", actual=origin,
                expected=log.origin_name)
    # An ECDSA or RSA key: Rekor v1 writes "<host> - <tree id>" (every shard of a v1 log
    # shares one key, so the tree id itself cannot be pinned). SPEC: rekor
    # pkg/util/checkpoint.go: <host> is the server's `rekor_server.hostname`, which
    # defaults to the machine's own host name, so a private deployment's origin need not
    # be its URL's host; the signature line carries the same name. Rekor v1 clients
    # (sigstore-go through rekor's VerifyCheckpointSignature) bind a v1 checkpoint to the
    # log by its key alone: the key is the one the entry's log id names.
    # rekor-tiles may also run with an ECDSA key, and then writes the bare name.
    match = _V1_ORIGIN_RE.match(origin)
    if match:
        return match.group(1)
    if origin in names:
        return origin
    raise E("checkpoint origin does not name the log", actual=origin,
            expected=f"{log.origin_name} - <tree id> (or {log.origin_name})")


def _signature_ok(log: TransparencyLog, signature: bytes, data: bytes) -> bool:
    key = log.key
    try:
        if key.family == "ed25519":
            # SPEC: C2SP signed-note: Ed25519 signs the note text itself.
            return key.verify(signature, data)
        if key.family in ("ecdsa", "rsa-pkcs1"):
            # SPEC: rekor pkg/util/signed_note.go signs SHA-256(text), whatever the curve.
            return key.verify(signature, data, "sha256")
    except (ValueError, TypeError):
        # cryptography rejects some malformed signature encodings with ValueError.
        return False
    # Ed25519ph and RSA-PSS are not used for notes by any log we know.
    return False


def verify_checkpoint(envelope: str, log: TransparencyLog) -> Checkpoint:
    """Parse a checkpoint envelope and check that ``log`` signed it.

    Steps: (1) parse the signed note and the checkpoint text; (2) the origin must name
    ``log``; (3) at least one signature line with the log's key name and key hint must
    verify with the log's key. Signature lines of other signers (witness cosignatures)
    are ignored.

    Raises :class:`~sealtrail.errors.CheckpointInvalidError` on any failure.
    """
    # (1) Parse strictly.
    note = SignedNote.from_text(envelope)
    checkpoint = Checkpoint.from_body(note.body)

    # (2) The origin binds the checkpoint to one log.
    name = _signer_name(checkpoint.origin, log)

    # (3) A signature by the log's key, under the log's name.
    try:
        hint = note_key_id(name, log.key)[:4]
    except KeyMalformedError as exc:
        raise E("the log's key cannot sign checkpoints", actual=log.key.family) from exc
    data = note.body.encode("utf-8")
    candidates = [s for s in note.signatures if s.name == name and s.key_hint == hint]
    for sig in candidates:
        if _signature_ok(log, sig.signature, data):
            return checkpoint
    seen = ", ".join(f"{s.name}/{s.key_hint.hex()}" for s in note.signatures)
    if candidates:
        raise E("checkpoint is not signed by the log: the log's signature does not verify",
                actual=seen, expected=f"a valid signature by {name}/{hint.hex()}")
    raise E("checkpoint is not signed by the log: no signature line with the log's name "
            "and key hint", actual=seen, expected=f"{name}/{hint.hex()}")
