"""The transparency log engine (sans HTTP): sequencing, tiles, checkpoints, proofs, search.

Typical wiring (the server does this once per configured log)::

    storage = LogStorage.embedded("/var/lib/sealtrail/log2026-1")
    engine = LogEngine.open(LogConfig(origin, key_name, private_key), storage)
    engine.start()
    result = await engine.add(canonical_body, search_keys)
    checkpoint = await engine.wait_for_checkpoint(result.index, timeout=20)
    proof = engine.inclusion_proof(result.index, checkpoint.size)
    ...
    engine.close()

See docs/adr/0004-log-storage-and-postgresql-plan.md for the storage design.
"""

from sealtrail.log.engine import (
    DEFAULT_BATCH_MAX,
    DEFAULT_BATCH_WAIT,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_MAX_PENDING,
    DEFAULT_TILE_CACHE,
    MAX_SEARCH_KEYS,
    MAX_SEARCH_LIMIT,
    AddResult,
    LogConfig,
    LogEngine,
    PublishedCheckpoint,
    StoredEntry,
)
from sealtrail.log.storage import LogStorage

__all__ = [
    "DEFAULT_BATCH_MAX",
    "DEFAULT_BATCH_WAIT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TILE_CACHE",
    "MAX_SEARCH_KEYS",
    "MAX_SEARCH_LIMIT",
    "AddResult",
    "LogConfig",
    "LogEngine",
    "LogStorage",
    "PublishedCheckpoint",
    "StoredEntry",
]
