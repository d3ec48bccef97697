"""`release sign`: every artifact of a release signed under one certificate, SHA256SUMS
written and signed, provenance for all of them, VERIFY.md; resumable.

Resuming. A release is signed file by file: each bundle is written (atomically: a
temporary, then a rename) as soon as it is verified, so a run stopped by a service failure
(a log outage) leaves the bundles it finished. A rerun keeps an existing bundle only if it
verifies, offline against the trusted root, for the artifact as it is now and for the
identity and issuer of the new certificate; a partial, corrupt or stale bundle (the file
changed, another signer) is signed again. The same holds for SHA256SUMS and the provenance
(which must also list exactly the current artifacts).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail._internal.keyfiles import read_bounded, write_atomic
from sealtrail.batch import read_bundles
from sealtrail.errors import Error, InputError, UsageError
from sealtrail.models.bundle import MAX_BUNDLE_BYTES, Bundle
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.release.checksums import CHECKSUMS_NAME, render_checksums
from sealtrail.release.layout import PROVENANCE_NAME, bundle_of
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Artifact, Verifier

__all__ = ["ReleaseSigning", "SignOutcome"]

#: Builds the provenance statement (in-toto, JSON bytes) of the subjects (name, sha256 hex).
ProvenanceMaker = Callable[[Sequence[tuple[str, str]]], bytes]


class SignOutcome(NamedTuple):
    signed: list[str]  # files signed in this run (artifacts, SHA256SUMS, the provenance)
    kept: list[str]  # files whose existing outputs verified and were kept
    written: list[str]  # every output file written in this run


class ReleaseSigning:
    """One run of `release sign` in ``directory`` with a keyless ``signer`` (its
    certificate already obtained and verified)."""

    def __init__(self, signer: Any, directory: str, artifacts: Sequence[str], *,
                 detached: bool = False) -> None:
        identity = signer.identity
        if not isinstance(identity, FulcioIdentity) or identity.issuer is None:
            raise UsageError("release sign is keyless: VERIFY.md and `release verify` name "
                             "the signer's identity and issuer (not --key)")
        self.signer = signer
        self.identity = identity
        self.directory = directory
        self.artifacts = list(artifacts)
        self.detached = detached
        self.policy = IdentityPolicy(identity=identity.san, issuer=identity.issuer)
        self._verifier = Verifier(signer.context.trusted_root)
        self.signed: list[str] = []
        self.kept: list[str] = []
        self.written: list[str] = []

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _write(self, name: str, data: bytes) -> None:
        # Atomic per file: a reader (or a rerun) never sees half a bundle. Not fsynced: a
        # bundle lost to a power cut is found missing or broken and signed again.
        write_atomic(self._path(name), data, durable=False)
        self.written.append(name)

    # -- what a previous run left ------------------------------------------------------

    def _kept_bundle(self, name: str, digest_hex: str) -> dict[str, Any] | None:
        """The existing bundle of ``name`` if it verifies for this digest and identity."""
        path = self._path(bundle_of(name))
        if not os.path.isfile(path):
            return None
        try:
            data = read_bounded(path, MAX_BUNDLE_BYTES, what="bundle", error=InputError)
            self._verifier.verify_artifact(Artifact({"sha256": bytes.fromhex(digest_hex)}),
                                           Bundle.from_json(data), self.policy)
            parsed: dict[str, Any] = json.loads(data)
        except (Error, OSError, ValueError):
            return None  # partial, corrupt or stale: signed again
        if self.detached and not all(entry.get("inclusionPromise") for entry in
                                     parsed["verificationMaterial"].get("tlogEntries", [])):
            # A .sig/.pem pair verifies alone only through a Rekor v1 entry's signed time
            # (an earlier run without --detached may have logged to Rekor v2).
            return None
        return parsed

    def _kept_provenance(self, subjects: Sequence[tuple[str, str]]) -> bool:
        path = self._path(PROVENANCE_NAME)
        if not os.path.isfile(path):
            return False
        try:
            bundles = read_bundles(path)
            if len(bundles) != 1:
                return False
            result = self._verifier.verify_dsse(bundles[0][1], self.policy)
            statement = json.loads(result.payload or b"null")
            listed = sorted((s["name"], s["digest"]["sha256"]) for s in statement["subject"])
        except (Error, OSError, ValueError, KeyError, TypeError):
            return False
        return listed == sorted(subjects)

    def _detached_outputs(self, name: str, bundle: dict[str, Any]) -> None:
        """cosign's NAME.sig (base64 signature) and NAME.pem (the leaf, PEM) of a bundle,
        written when absent or different."""
        signature = bundle["messageSignature"]["signature"].encode()
        der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
        pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
        for suffix, data in ((".sig", signature), (".pem", pem)):
            path = self._path(name + suffix)
            try:
                with open(path, "rb") as handle:
                    if handle.read(len(data) + 1) == data:
                        continue
            except OSError:
                pass
            self._write(name + suffix, data)

    # -- the run ---------------------------------------------------------------------

    def run(self, digests: dict[str, str], *, provenance: ProvenanceMaker | None,
            instructions: Callable[[], str],
            on_done: Callable[[str, int | None], None] | None = None) -> SignOutcome:
        """Sign what is missing. ``digests``: name -> sha256 hex of every artifact.
        ``on_done(name, log_index)`` is called as each file is done (index None: kept).
        A service failure propagates after the files already done are written."""
        checksums = render_checksums(digests)
        current = None
        try:
            with open(self._path(CHECKSUMS_NAME), "rb") as handle:
                current = handle.read(len(checksums) + 1)
        except OSError:
            pass
        if current != checksums:
            self._write(CHECKSUMS_NAME, checksums)
        import hashlib

        targets = {**digests, CHECKSUMS_NAME: hashlib.sha256(checksums).hexdigest()}
        missing = []
        for name in [*self.artifacts, CHECKSUMS_NAME]:
            bundle = self._kept_bundle(name, targets[name])
            if bundle is None:
                missing.append(name)
                continue
            self.kept.append(name)
            if self.detached:
                self._detached_outputs(name, bundle)
            if on_done is not None:
                on_done(name, None)

        def done(result: Any) -> None:
            name = os.path.basename(result.name)
            self._write(bundle_of(name), result.bundle_json())
            if self.detached:
                self._detached_outputs(name, result.bundle)
            self.signed.append(name)
            if on_done is not None:
                on_done(name, result.log_index)

        if missing:
            self.signer.sign_many([(self._path(name), bytes.fromhex(targets[name]))
                                   for name in missing], on_done=done)
        if provenance is not None:
            subjects = sorted((name, digests[name]) for name in self.artifacts)
            if self._kept_provenance(subjects):
                self.kept.append(PROVENANCE_NAME)
                if on_done is not None:
                    on_done(PROVENANCE_NAME, None)
            else:
                result = self.signer.sign_statement(provenance(subjects), PROVENANCE_NAME)
                # JSON Lines (one bundle), as slsa-github-generator writes .intoto.jsonl.
                self._write(PROVENANCE_NAME, result.bundle_json())
                self.signed.append(PROVENANCE_NAME)
                if on_done is not None:
                    on_done(PROVENANCE_NAME, result.log_index)
        from sealtrail.release.layout import INSTRUCTIONS_NAME

        self._write(INSTRUCTIONS_NAME, instructions().encode("utf-8"))
        return SignOutcome(self.signed, self.kept, self.written)
