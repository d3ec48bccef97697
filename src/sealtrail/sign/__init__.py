"""Signing (L3): keyless or managed-key signatures, timestamped, logged and verified.

- :class:`~sealtrail.sign.context.SigningContext`: the trusted root and the CA, TSA and log
  URLs of a signing config;
- :class:`~sealtrail.sign.signer.Signer`: signs artifacts (hashedrekord) and in-toto
  statements (DSSE) and returns bundles that have been verified against the trusted root;
- :mod:`~sealtrail.sign.certificate_request`: the CA exchange, sent before the signer loads;
- :mod:`~sealtrail.sign.keys`: managed key pairs; :mod:`~sealtrail.sign.outputs`:
  all-or-nothing output files; :mod:`~sealtrail.sign.statement`: in-toto statements.

The names below load on first use (PEP 562): importing a light submodule (the context, the
outputs, the certificate request) does not load the signer and the verifier behind it, so
the CLI can ask the CA while they load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealtrail.sign.context import SigningContext
    from sealtrail.sign.signer import SignedArtifact, Signer, hash_file

__all__ = ["SignedArtifact", "Signer", "SigningContext", "hash_file"]

# Files in flight at once in Signer.sign_many (``sealtrail sign --jobs``). Each waits on the
# network (its timestamp and log requests; a Rekor v2 log answers once a checkpoint covers the
# entry), so many in flight let the log batch them and hide the round trips; bounded so a
# large release does not open hundreds of connections. 32: through a relay adding 25 ms each
# way, 100 files took 12-15 % less wall time than with 16 (on loopback up to 5 % more), and
# 64 no less than 32 (ADR 0011).
# Here, not in the signer: the CLI checks --jobs before it asks the CA anything.
DEFAULT_WORKERS = 32
MAX_WORKERS = 64

_HOMES = {"SigningContext": "sealtrail.sign.context", "SignedArtifact": "sealtrail.sign.signer",
          "Signer": "sealtrail.sign.signer", "hash_file": "sealtrail.sign.signer"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
