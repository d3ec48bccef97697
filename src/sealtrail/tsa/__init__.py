"""The RFC 3161 timestamp authority of a self-hosted instance (domain logic, no HTTP).

:mod:`sealtrail.tsa.keys` creates and stores the TSA's root and timeStamping leaf;
:mod:`sealtrail.tsa.authority` parses timestamp requests and issues tokens. The HTTP wiring
lives in :mod:`sealtrail.server.tsa_api`.
"""

from __future__ import annotations

from sealtrail.tsa.authority import (
    SIGSTORE_TSA_POLICY,
    TimestampAuthority,
    TimestampRequest,
)
from sealtrail.tsa.keys import TSAMaterial, create_tsa, load_tsa

__all__ = [
    "SIGSTORE_TSA_POLICY",
    "TSAMaterial",
    "TimestampAuthority",
    "TimestampRequest",
    "create_tsa",
    "load_tsa",
]
