"""Provenance verification (L3): SLSA provenance, GitHub artifact attestations, npm
provenance, PEP 740 attestations and verification summary attestations (VSA), checked on top
of the Sigstore verifier (:mod:`sealtrail.verify`).

Modules by the tool whose semantics they follow:

- :mod:`sealtrail.provenance.errors`: the error names slsa-verifier users know, as codes;
- ``slsa``: ``verify-artifact`` (slsa-verifier);
- ``github``: ``verify-attestation`` (``gh attestation verify``), npm provenance;
- ``vsa``: ``verify-vsa`` and VSAs written on success;
- ``pypi``: ``verify-pypi`` (PEP 740, pypi-attestations);
- ``policy``: the policy file shared by these commands.

The checks are pure (bytes and parsed models in, results or errors out); the CLI reads files.
"""

from __future__ import annotations

from typing import Any as _Any

# The one-call API of each verifier, loaded on first use (PEP 562) so that importing a light
# submodule (errors) does not load the Sigstore verifier: public name -> defining module.
_EXPORTS = {
    "SlsaExpectations": "sealtrail.provenance.slsa",
    "VerifiedProvenance": "sealtrail.provenance.slsa",
    "verify_artifact_provenance": "sealtrail.provenance.slsa",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sealtrail.provenance' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
