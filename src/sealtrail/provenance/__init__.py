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
