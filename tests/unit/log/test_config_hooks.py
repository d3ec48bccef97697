"""LogConfig's leaf_hasher and note_signer hooks: an engine uses them, and only them.

A memory-storage engine with a custom leaf hash (SHA-256 of the body's second half) and a
custom note signer (a fixed signature line recording the time it was given): the stored
leaf hashes, the tile hashes, the root and every published checkpoint come from the hooks.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealtrail.errors import UsageError
from sealtrail.log import LogConfig, LogEngine, LogStorage
from sealtrail.merkle import leaf_hash, verify_inclusion
from sealtrail.merkle.tree import compute_root
from sealtrail.models.checkpoint import Checkpoint, NoteSignature, SignedNote

ORIGIN = "hooks.example/log"


def second_half_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"custom" + body[len(body) // 2:]).digest()


class RecordingSigner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def __call__(self, body: str, now: float) -> str:
        self.calls.append((body, now))
        line = NoteSignature("custom-signer", b"\x01\x02\x03\x04", str(now).encode())
        return SignedNote(body, (line,)).to_text()


def test_engine_hashes_and_signs_with_the_hooks() -> None:
    signer = RecordingSigner()
    config = LogConfig(ORIGIN, ORIGIN, ed25519.Ed25519PrivateKey.generate(), batch_wait=0.0,
                       leaf_hasher=second_half_hash, note_signer=signer)
    bodies = [b"first-AAAA", b"second-BBBB", b"third-CCCC"]
    with LogEngine.open(config, LogStorage.memory()) as engine:
        engine.start()
        results = [engine.add_blocking(body, timeout=30) for body in bodies]
        assert [r.index for r in results] == [0, 1, 2]
        checkpoint = engine.wait_blocking(2, timeout=30)
        hashes = [second_half_hash(body) for body in bodies]
        assert checkpoint.size == 3
        assert checkpoint.root_hash == compute_root(hashes)
        assert checkpoint.root_hash != compute_root([leaf_hash(b) for b in bodies])
        # The note is the signer's, over the checkpoint text, at the engine's time.
        note = SignedNote.from_text(checkpoint.note)
        assert note.signatures[0].name == "custom-signer"
        assert Checkpoint.from_body(note.body) == Checkpoint(ORIGIN, 3, checkpoint.root_hash)
        assert (note.body, checkpoint.published_at) in signer.calls
        assert note.signatures[0].signature == str(checkpoint.published_at).encode()
        # Lookups and proofs use the same hash.
        assert engine.find(hashes[1]) == 1 and engine.find(leaf_hash(bodies[1])) is None
        proof = engine.inclusion_proof(1, 3)
        verify_inclusion(hashes[1], 1, 3, proof, checkpoint.root_hash)
        assert engine.read_tile(0, 0, 3) == b"".join(hashes)


def test_defaults_are_rfc6962_and_a_c2sp_note() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    config = LogConfig(ORIGIN, ORIGIN, key)
    assert config.hash_leaf(b"x") == leaf_hash(b"x")
    note = SignedNote.from_text(config.sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x00" * 32)
                                                       .to_body(), 0.0))
    assert note.signatures[0].name == ORIGIN
    key.public_key().verify(note.signatures[0].signature, note.body.encode())


@pytest.mark.parametrize("hook", ["leaf_hasher", "note_signer"])
def test_hooks_must_be_callable(hook: str) -> None:
    with pytest.raises(UsageError, match=hook):
        LogConfig(ORIGIN, ORIGIN, ed25519.Ed25519PrivateKey.generate(),
                  **{hook: "not callable"})  # type: ignore[arg-type]
