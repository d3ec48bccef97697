"""sealtrail: sign releases, prove how they were built, and verify both.

The public API is re-exported here and listed in ``__all__`` (a test keeps the two in step).
Names are imported lazily on first use, so ``import sealtrail`` (and the CLI's start-up)
does not pay for cryptography until a verifier is actually needed.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import Any as _Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "Artifact": "sealtrail.verify.verifier",
    "Bundle": "sealtrail.models.bundle",
    "Error": "sealtrail.errors",
    "IdentityPolicy": "sealtrail.verify.policy",
    "KeyPolicy": "sealtrail.verify.policy",
    "Outcome": "sealtrail.batch",
    "Pair": "sealtrail.batch",
    "Signer": "sealtrail.sign.signer",
    "SigningContext": "sealtrail.sign.context",
    "TrustedRoot": "sealtrail.models.trusted_root",
    "VerificationError": "sealtrail.errors",
    "VerificationResult": "sealtrail.verify.verifier",
    "Verifier": "sealtrail.verify.verifier",
    "load_trusted_root": "sealtrail.trustroot",
    "verify_many": "sealtrail.batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sealtrail' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    # The public API only: not the helpers above, nor the submodules that imports load as
    # attributes of the package (errors, models, verify...), which stay importable by name.
    return sorted([*__all__, "__version__"])
