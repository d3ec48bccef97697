"""Signing (L3): keyless or managed-key signatures, timestamped, logged and verified.

- :class:`~sealtrail.sign.context.SigningContext`: the trusted root and the CA, TSA and log
  URLs of a signing config;
- :class:`~sealtrail.sign.signer.Signer`: signs artifacts (hashedrekord) and in-toto
  statements (DSSE) and returns bundles that have been verified against the trusted root;
- :mod:`~sealtrail.sign.keys`: managed key pairs; :mod:`~sealtrail.sign.outputs`:
  all-or-nothing output files; :mod:`~sealtrail.sign.statement`: in-toto statements.
"""

from __future__ import annotations

from sealtrail.sign.context import SigningContext
from sealtrail.sign.signer import SignedArtifact, Signer, hash_file

__all__ = ["SignedArtifact", "Signer", "SigningContext", "hash_file"]
