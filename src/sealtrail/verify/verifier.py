"""The Sigstore bundle verifier: pure checks, in a fixed and documented order.

``Verifier(trusted_root).verify_artifact(artifact, bundle, policy)`` runs these steps; the
first failing step raises a :class:`sealtrail.errors.VerificationError` subclass with a
stable code (docs/verification.md lists them):

1. Verified times. Each RFC 3161 timestamp that verifies against a TSA of the trusted root
   gives a verified time; each Rekor v1 entry's inclusion promise (SET) must verify with
   its log's key, and its integrated time is then a verified time, which must not lie in
   the future. At least ``time_threshold`` (default 1) verified times are required, as
   sigstore-go's observer-timestamp threshold: a timestamp that does not verify fails the
   bundle only when the threshold is not met (a Rekor v2 entry has no SET and so needs a
   timestamp). A bundle listing one log entry twice is refused.
2. Signer. Keyless: the leaf certificate must satisfy the Fulcio profile, chain to a CA of
   the trusted root valid at *every* verified time, and carry exactly one valid SCT from a
   trusted CT log (unless the root has no CT logs and the leaf embeds none: GitHub's own
   instance). With ``other_roots``, the root whose CA issued the leaf is used. Managed
   key: the bundle must name a public key, and the policy's key is used.
3. Policy. The certificate identity (SAN) and OIDC issuer (and optional extensions) match.
4. Artifact. The artifact digest equals the signed digest and the signature verifies
   (hashedrekord); or the DSSE signature over PAE verifies and an in-toto subject carries
   the artifact's digest.
5. Log entries (required when the trusted root has logs). Each entry's log is in the
   trusted root; its index agrees with its inclusion proof's; its checkpoint is signed by
   the log; the inclusion proof leads from the entry's leaf hash to the checkpoint's root;
   and the entry body records this bundle's signature, signer and content.

No step does I/O: the caller supplies parsed inputs and the current time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Mapping, NamedTuple, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail._internal.clock import utcnow
from sealtrail.crypto.keys import PublicKey, hash_by_name
from sealtrail.errors import (
    BundleMalformedError,
    CertChainInvalidError,
    CheckpointInvalidError,
    DigestMismatchError,
    IdentityMismatchError,
    Error,
    KeyMismatchError,
    NoVerifiedTimeError,
    SignatureInvalidError,
    SubjectMismatchError,
    TimestampInvalidError,
    TlogInclusionInvalidError,
    TlogKeyUnknownError,
    UsageError,
)
from sealtrail.merkle import leaf_hash, verify_inclusion
from sealtrail.models.bundle import Bundle, InclusionProof, TlogEntry
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.models.intoto import INTOTO_PAYLOAD_TYPE, Statement
from sealtrail.models.rekor import EntryBody, parse_entry_body
from sealtrail.models.trusted_root import TransparencyLog, TrustedRoot
from sealtrail.verify._certificate import verify_certificate
from sealtrail.verify._checkpoint import verify_checkpoint
from sealtrail.verify._memo import DEFAULT_MAX_ENTRIES, SuccessMemo
from sealtrail.verify._tlog import match_entry_body, verify_set
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy, Policy

__all__ = ["Artifact", "VerificationResult", "Verifier"]

# How far an integrated time may run ahead of our clock before we call it "in the future".
DEFAULT_CLOCK_SKEW = timedelta(minutes=1)
_DIGEST_ALGORITHMS = ("sha256", "sha384", "sha512")


class Artifact(NamedTuple):
    """The artifact being verified: its digests (hashlib name -> raw bytes).

    Build it with :meth:`from_bytes` or :meth:`from_digest`; the CLI streams large files
    through :func:`sealtrail._internal.files.digest_file` instead of loading them.
    """

    digests: Mapping[str, bytes]

    @classmethod
    def from_bytes(cls, data: bytes, algorithms: tuple[str, ...] = _DIGEST_ALGORITHMS) -> "Artifact":
        """Hash in-memory bytes with each of ``algorithms``."""
        return cls({name: hashlib.new(name, data).digest() for name in algorithms})

    @classmethod
    def from_digest(cls, text: str) -> "Artifact":
        """Parse ``sha256:HEX`` (also sha384 / sha512)."""
        algorithm, _, value = text.partition(":")
        algorithm = algorithm.lower()
        if algorithm not in _DIGEST_ALGORITHMS:
            raise UsageError("unsupported digest algorithm", actual=algorithm,
                             expected="sha256, sha384 or sha512")
        size = hashlib.new(algorithm).digest_size
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            raise UsageError(f"{algorithm} digest is not hex", actual=value) from None
        if len(digest) != size:
            raise UsageError(f"{algorithm} digest has the wrong length", actual=len(value),
                             expected=2 * size)
        return cls({algorithm: digest})

    def digest(self, algorithm: str) -> bytes:
        """The digest with ``algorithm``, or a DigestMismatchError if it is not known."""
        try:
            return self.digests[algorithm]
        except KeyError:
            raise DigestMismatchError(
                f"the bundle signs a {algorithm} digest but only "
                f"{', '.join(sorted(self.digests))} of the artifact is known") from None


class VerificationResult(NamedTuple):
    """What a successful verification established."""

    identity: str | None
    issuer: str | None
    extensions: Mapping[str, str]
    key_id: str | None
    log_index: int | None  # None: the bundle has no log entry (GitHub's instance)
    log_url: str | None
    verified_times: tuple[datetime, ...]
    payload_type: str | None = None
    payload: bytes | None = None
    statement: Statement | None = None

    @property
    def verified_time(self) -> datetime:
        """The earliest verified time (when the signature is known to have existed)."""
        return min(self.verified_times)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "identity": self.identity,
            "issuer": self.issuer,
            "log_index": self.log_index,
            "verified_time": self.verified_time.isoformat().replace("+00:00", "Z"),
        }


class Verifier:
    """Verifies Sigstore bundles against one trusted root. Thread-safe and reusable.

    ``other_roots`` are further trusted roots (for example GitHub's own instance beside
    public-good): for a keyless bundle, the root whose certificate authority issued the
    leaf certificate is used (chosen by the leaf's issuer name), else ``trusted_root``.
    What a root requires follows what it holds: transparency log entries if it has logs,
    an embedded SCT if it has CT logs. ``time_threshold`` is the number of verified times
    required (RFC 3161 timestamps that verify, plus integrated times of Rekor v1 entries
    whose inclusion promise verifies), as sigstore-go's observer-timestamp threshold.
    """

    def __init__(self, trusted_root: TrustedRoot, *, now: datetime | None = None,
                 clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
                 memo_size: int = DEFAULT_MAX_ENTRIES,
                 other_roots: Sequence[TrustedRoot] = (),
                 time_threshold: int = 1) -> None:
        """``memo_size`` bounds the memory of passed checks (0 turns it off); see ``_memo``."""
        for index, root in enumerate((trusted_root, *other_roots)):
            if not isinstance(root, TrustedRoot):
                raise UsageError(
                    "Verifier needs a parsed TrustedRoot" + (f" (other_roots[{index - 1}])"
                                                             if index else ""),
                    actual=type(root).__name__,
                    expected="TrustedRoot.from_json(...) or sealtrail.load_trusted_root()")
        if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
            raise UsageError("now must be a timezone-aware datetime")
        if isinstance(time_threshold, bool) or not isinstance(time_threshold, int) \
                or time_threshold < 1:
            raise UsageError("time_threshold must be an integer >= 1", actual=time_threshold)
        self._trusted_root = trusted_root
        self._roots = (trusted_root, *other_roots)
        self._fixed_now = now
        self._clock_skew = clock_skew
        self._time_threshold = time_threshold
        self._memo = SuccessMemo(memo_size)

    @property
    def trusted_root(self) -> TrustedRoot:
        """The trust root this verifier checks against."""
        return self._trusted_root

    # -- public API -----------------------------------------------------------------
    def verify_artifact(self, artifact: Artifact | bytes, bundle: Bundle | str | bytes | dict[str, Any],
                        policy: Policy) -> VerificationResult:
        """Verify that ``bundle`` signs ``artifact`` under ``policy``.

        For a DSSE bundle, the artifact must be a subject of the in-toto statement.
        Raises a :class:`VerificationError` subclass, or :class:`BundleMalformedError`.
        """
        if isinstance(artifact, (bytes, bytearray)):
            artifact = Artifact.from_bytes(bytes(artifact))
        elif not isinstance(artifact, Artifact):
            raise UsageError("artifact must be bytes or an Artifact",
                             actual=type(artifact).__name__)
        _check_policy(policy)
        return self._verify(_as_bundle(bundle), policy, artifact)

    def verify_dsse(self, bundle: Bundle | str | bytes | dict[str, Any], policy: Policy, *,
                    payload_type: str | None = None) -> VerificationResult:
        """Verify a DSSE bundle without an artifact; return its verified payload.

        The payload need not be an in-toto statement (the result then has no statement).
        ``payload_type``, when given, must equal the envelope's payload type (checked
        before anything else, and again as part of what the signature covers).
        """
        _check_policy(policy)
        parsed = _as_bundle(bundle)
        if parsed.dsse_envelope is None:
            raise BundleMalformedError("bundle holds a message signature, not a DSSE envelope")
        if payload_type is not None and parsed.dsse_envelope.payload_type != payload_type:
            raise SubjectMismatchError("DSSE payload type is not the expected one",
                                       actual=parsed.dsse_envelope.payload_type,
                                       expected=payload_type)
        return self._verify(parsed, policy, None)

    def verify_bundle(self, bundle: Bundle, policy: Policy,
                      artifact: Artifact | None = None) -> VerificationResult:
        """Verify an already-parsed bundle: against ``artifact`` if given, else as DSSE."""
        if artifact is None:
            return self.verify_dsse(bundle, policy)
        return self.verify_artifact(artifact, bundle, policy)

    @staticmethod
    def required_digests(bundle: Bundle) -> tuple[str, ...]:
        """The artifact digests (hashlib names) needed to verify ``bundle``.

        Lets callers hash a large artifact once, with only the algorithms that matter.
        """
        if bundle.message_signature is not None:
            declared = bundle.message_signature.digest_algorithm
            if declared is not None:
                return (hash_by_name(declared, BundleMalformedError),)
            return (_body_digest_algorithm(bundle) or "sha256",)
        envelope = bundle.dsse_envelope
        assert envelope is not None
        if envelope.payload_type == INTOTO_PAYLOAD_TYPE:
            try:
                statement = Statement.from_payload(envelope.payload)
            except Error:
                return ("sha256",)
            found = {name for s in statement.subjects for name in s.digest}
            wanted = tuple(name for name in _DIGEST_ALGORITHMS if name in found)
            return wanted or ("sha256",)
        return ("sha256",)

    # -- the steps --------------------------------------------------------------------
    def _root_for(self, bundle: Bundle) -> tuple[TrustedRoot, int]:
        """The trusted root for ``bundle`` and its index (part of every memo key).

        SPEC: gh attestation verify picks the verifier by the leaf certificate's issuer
        (provenance-formats.md §2); here the root whose CA issued the leaf, by name.
        """
        certificate = bundle.certificate
        if certificate is not None and len(self._roots) > 1:
            for index, root in enumerate(self._roots):
                if any(ca.chain and _may_have_issued(ca.chain[0], certificate)
                       for ca in root.certificate_authorities):
                    return root, index
        return self._trusted_root, 0

    def _verify(self, bundle: Bundle, policy: Policy, artifact: Artifact | None) -> VerificationResult:
        now = self._fixed_now or utcnow()
        root, tag = self._root_for(bundle)
        _refuse_duplicate_entries(bundle)
        if not bundle.tlog_entries and root.tlogs:
            # SPEC: sigstore-go requires a log entry when the trusted root has logs; a root
            # without logs (GitHub's instance) has timestamps as its only verified times.
            raise BundleMalformedError("bundle has no transparency log entry")
        entries = [(entry, self._log_for(root, entry)) for entry in bundle.tlog_entries]

        # 1. Verified times.
        verified_times = self._verified_times(bundle, entries, now, root, tag)

        # 2. Signer.
        certificate = bundle.certificate
        key: PublicKey
        identity: FulcioIdentity | None = None
        if isinstance(policy, KeyPolicy):
            key = policy.key()
            if certificate is not None:
                raise KeyMismatchError("bundle is signed with a certificate, not with a managed key",
                                       expected=f"public key {key.key_id.hex()[:16]}")
            self._check_logged_key(bundle, key)
        elif isinstance(policy, IdentityPolicy):
            if certificate is None:
                raise IdentityMismatchError("bundle is signed with a managed key, so it names no "
                                            "identity; verify it with --key",
                                            expected=policy.describe_identity())
            self._verify_certificate(certificate, verified_times, root, tag)
            leaf_der = certificate.public_bytes(Encoding.DER)
            identity = self._memo.run(("identity", leaf_der),
                                      lambda: FulcioIdentity.from_certificate(certificate))
            key = PublicKey.from_key(certificate.public_key(), None, CertChainInvalidError)
            # 3. Policy.
            policy.check(identity)
        else:  # pragma: no cover - typing guard
            raise UsageError("unknown policy type")

        # 4. Artifact and signature.
        statement = None
        if bundle.message_signature is not None:
            if artifact is None:
                raise UsageError("a message-signature bundle needs the artifact to verify")
            self._check_message_signature(bundle, artifact, key)
        else:
            statement = self._check_dsse(bundle, key, artifact)

        # 5. Log entries.
        for entry, log in entries:
            self._check_log_entry(entry, log, bundle, certificate, key, artifact, tag)

        envelope = bundle.dsse_envelope
        return VerificationResult(
            identity=identity.san if identity else None,
            issuer=identity.issuer if identity else None,
            extensions=dict(identity.extensions) if identity else {},
            key_id=None if identity else key.key_id.hex(),
            log_index=entries[0][0].log_index if entries else None,
            log_url=entries[0][1].base_url if entries else None,
            verified_times=tuple(verified_times),
            payload_type=envelope.payload_type if envelope else None,
            payload=envelope.payload if envelope else None,
            statement=statement,
        )

    @staticmethod
    def _log_for(root: TrustedRoot, entry: TlogEntry) -> TransparencyLog:
        log = root.tlog_by_id(entry.log_id)
        if log is None:
            raise TlogKeyUnknownError("log entry comes from a log that is not in the trusted root",
                                      actual=entry.log_id.hex())
        return log

    def _verified_times(self, bundle: Bundle, entries: list[tuple[TlogEntry, TransparencyLog]],
                        now: datetime, root: TrustedRoot, tag: int) -> list[datetime]:
        times: list[datetime] = []
        timestamp_failure: TimestampInvalidError | None = None
        # 1a. RFC 3161 timestamps over the signature, from TSAs of the trusted root.
        # SPEC: sigstore-go VerifySignedTimestamp: each token that verifies is a verified
        # time; one that does not is only reported if the threshold is not met.
        if bundle.rfc3161_timestamps:
            # Imported here: the CMS machinery is only needed for bundles with timestamps,
            # and the CLI should not pay for it at start-up otherwise.
            from sealtrail.verify._timestamp import check_timestamp_count, verify_timestamp_der

            check_timestamp_count(bundle.rfc3161_timestamps)
            signature = bundle.signature
            for index, der in enumerate(bundle.rfc3161_timestamps):
                try:
                    times.append(self._memo.run(
                        ("timestamp", tag, signature, der),
                        partial(verify_timestamp_der, der, signature,
                                root.timestamp_authorities)))
                except TimestampInvalidError as exc:
                    timestamp_failure = timestamp_failure or TimestampInvalidError(
                        f"RFC 3161 timestamp [{index}]: {exc.message}", expected=exc.expected,
                        actual=exc.actual)
        for when in times:
            if when > now + self._clock_skew:
                raise TimestampInvalidError("timestamp lies in the future", actual=when.isoformat(),
                                            expected=f"<= {now.isoformat()}")
        # 1b. Integrated times backed by a valid inclusion promise (Rekor v1).
        for entry, log in entries:
            if entry.signed_entry_timestamp is None:
                continue
            self._memo.run(("set", tag, entry.log_id, entry.log_index, entry.integrated_time,
                            entry.canonicalized_body, entry.signed_entry_timestamp or b""),
                           lambda: verify_set(entry, log))
            integrated = datetime.fromtimestamp(entry.integrated_time, timezone.utc)
            if integrated > now + self._clock_skew:
                raise TimestampInvalidError("log entry's integrated time lies in the future",
                                            actual=integrated.isoformat(),
                                            expected=f"<= {now.isoformat()}")
            if not log.validity.contains(integrated):
                raise TlogKeyUnknownError(f"log key of {log.base_url} was not valid at the "
                                          "integrated time", actual=integrated.isoformat())
            times.append(integrated)
        # 1c. At least ``time_threshold`` verified times. SPEC: Rekor v2 entries carry no
        # SET, so a bundle with only v2 entries must carry an RFC 3161 timestamp.
        if len(times) < self._time_threshold:
            if timestamp_failure is not None:
                raise timestamp_failure
            if not times:
                raise NoVerifiedTimeError(
                    "no verified time: the bundle has neither an RFC 3161 timestamp nor a "
                    "transparency log inclusion promise")
            raise NoVerifiedTimeError("too few verified times", actual=len(times),
                                      expected=f">= {self._time_threshold}")
        # 1d. Entries without a SET (Rekor v2) have no integrated time: their log key must be
        # valid at the times the TSAs vouch for instead.
        for entry, log in entries:
            if entry.signed_entry_timestamp is None:
                for when in times:
                    if not log.validity.contains(when):
                        raise TlogKeyUnknownError(f"log key of {log.base_url} was not valid at "
                                                  "the timestamped time", actual=when.isoformat())
        return times

    def _verify_certificate(self, certificate: x509.Certificate, times: list[datetime],
                            root: TrustedRoot, tag: int) -> None:
        # SPEC: the leaf must be valid, and chain to a valid CA, at every verified time.
        for when in sorted(set(times)):
            self._memo.run(("certificate", tag, certificate.public_bytes(Encoding.DER),
                            when.isoformat()),
                           lambda: verify_certificate(certificate, root.certificate_authorities,
                                                      root.ctlogs, when,
                                                      require_sct=None))

    def _check_message_signature(self, bundle: Bundle, artifact: Artifact, key: PublicKey) -> None:
        message = bundle.message_signature
        assert message is not None
        algorithm = hash_by_name(message.digest_algorithm or "SHA2_256", BundleMalformedError)
        if message.digest is None:
            # No declared digest: the log entry body will supply the algorithm; assume SHA-256
            # here, and step 5 checks the body's digest against the artifact as well.
            algorithm = _body_digest_algorithm(bundle) or algorithm
        digest = artifact.digest(algorithm)
        if message.digest is not None and message.digest != digest:
            raise DigestMismatchError("artifact digest does not match the signed digest",
                                      actual=f"{algorithm}:{digest.hex()}",
                                      expected=f"{algorithm}:{message.digest.hex()}")
        if message.digest is None:
            # Another artifact than the logged one is named as such (cosign's legacy bundle
            # and v0.1 bundles declare no digest), not as a signature that fails to verify.
            for entry in bundle.tlog_entries:
                body = self._entry_body(entry)
                if body.digest is not None and body.digest_algorithm == algorithm \
                        and body.digest != digest:
                    raise DigestMismatchError(
                        "artifact digest does not match the digest in the log",
                        actual=f"{algorithm}:{digest.hex()}",
                        expected=f"{algorithm}:{body.digest.hex()}")
        if not self._memo.holds(("digest-signature", key.spki_der, algorithm, digest,
                                 message.signature),
                                lambda: key.verify_digest(message.signature, digest, algorithm)):
            raise SignatureInvalidError("signature does not verify over the artifact digest "
                                        "with the signer's key")

    def _check_dsse(self, bundle: Bundle, key: PublicKey, artifact: Artifact | None) -> Statement | None:
        envelope = bundle.dsse_envelope
        assert envelope is not None
        # SPEC: DSSE v1: the signature covers PAE(payloadType, payload).
        pae = envelope.pae()
        if not self._memo.holds(("dsse-signature", key.spki_der, envelope.signatures[0].sig, pae),
                                lambda: key.verify(envelope.signatures[0].sig, pae)):
            raise SignatureInvalidError("DSSE signature does not verify over the envelope "
                                        "with the signer's key")
        statement = None
        if envelope.payload_type == INTOTO_PAYLOAD_TYPE:
            statement = Statement.from_payload(envelope.payload)
        if artifact is not None:
            if statement is None:
                raise SubjectMismatchError("DSSE payload is not an in-toto statement, so it names "
                                           "no artifact", actual=envelope.payload_type,
                                           expected=INTOTO_PAYLOAD_TYPE)
            if statement.subject_matching(dict(artifact.digests)) is None:
                found = ", ".join(f"{s.name}" for s in statement.subjects[:5]) or "none"
                raise SubjectMismatchError(
                    "no in-toto subject carries the artifact's digest",
                    actual=f"subjects {found}",
                    expected=", ".join(f"{a}:{d.hex()}" for a, d in sorted(artifact.digests.items())))
        return statement

    def _check_log_entry(self, entry: TlogEntry, log: TransparencyLog, bundle: Bundle,
                         certificate: x509.Certificate | None, key: PublicKey,
                         artifact: Artifact | None, tag: int) -> None:
        # 5a. The inclusion proof leads from the entry's leaf hash to the proof's root, and a
        # checkpoint signed by the log commits to that root and tree size.
        proof = entry.inclusion_proof
        if proof is not None:
            _check_proof_index(entry, proof)
            verify_inclusion(leaf_hash(entry.canonicalized_body), proof.log_index, proof.tree_size,
                             proof.hashes, proof.root_hash)
            if proof.checkpoint is None:
                # SPEC: bundle spec: InclusionProof.checkpoint is REQUIRED.
                raise CheckpointInvalidError("inclusion proof has no checkpoint")
            envelope_text = proof.checkpoint
            checkpoint = self._memo.run(("checkpoint", tag, entry.log_id, envelope_text),
                                        lambda: verify_checkpoint(envelope_text, log))
            if checkpoint.root_hash != proof.root_hash or checkpoint.size != proof.tree_size:
                raise CheckpointInvalidError(
                    "the log's checkpoint does not commit to the inclusion proof's tree",
                    actual=f"size {proof.tree_size} root {proof.root_hash.hex()}",
                    expected=f"size {checkpoint.size} root {checkpoint.root_hash.hex()}")
        elif entry.signed_entry_timestamp is None:
            raise BundleMalformedError("log entry has neither an inclusion proof nor a promise")
        # Otherwise: an entry with only an inclusion promise is a Rekor v1 entry (v0.1
        # bundles), whatever its kind's version string (intoto is 0.0.2 on Rekor v1); the
        # promise verified in step 1.
        # 5b. The entry records this bundle.
        body = self._entry_body(entry)
        recorded_digest = match_entry_body(body, bundle, certificate,
                                           None if certificate is not None else key)
        if recorded_digest is not None and artifact is not None:
            assert body.digest_algorithm is not None
            digest = artifact.digest(body.digest_algorithm)
            if recorded_digest != digest:
                raise DigestMismatchError("artifact digest does not match the digest in the log",
                                          actual=f"{body.digest_algorithm}:{digest.hex()}",
                                          expected=f"{body.digest_algorithm}:{recorded_digest.hex()}")


    def _entry_body(self, entry: TlogEntry) -> EntryBody:
        """The parsed body of ``entry``; parsed once (pure), whichever step asks first."""
        return self._memo.run(("body", entry.kind, entry.version, entry.canonicalized_body),
                              lambda: parse_entry_body(entry.canonicalized_body, entry.kind,
                                                       entry.version))

    def _check_logged_key(self, bundle: Bundle, key: PublicKey) -> None:
        """Managed keys: say plainly when the log names another key than the expected one."""
        for entry in bundle.tlog_entries:
            for recorded in self._entry_body(entry).signatures:
                if not recorded.verifier.matches_key(key):
                    raise KeyMismatchError(
                        "bundle was signed by another key than the expected one",
                        actual=recorded.verifier.describe(),
                        expected=f"public key {key.key_id.hex()[:16]}")


def _key_identifier(certificate: x509.Certificate,
                    kind: type[x509.AuthorityKeyIdentifier] | type[x509.SubjectKeyIdentifier],
                    ) -> bytes | None:
    try:
        value = certificate.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return value.key_identifier if isinstance(value, x509.AuthorityKeyIdentifier) else value.digest


def _may_have_issued(ca: x509.Certificate, leaf: x509.Certificate) -> bool:
    """A cheap pre-selection (no signature check): the CA's name is the leaf's issuer and,
    when both carry them, its subject key identifier is the leaf's authority key id.
    The chosen root's chain is then verified in full."""
    if ca.subject != leaf.issuer:
        return False
    authority = _key_identifier(leaf, x509.AuthorityKeyIdentifier)
    subject = _key_identifier(ca, x509.SubjectKeyIdentifier)
    return authority is None or subject is None or authority == subject


def _check_policy(policy: object) -> None:
    if not isinstance(policy, (IdentityPolicy, KeyPolicy)):
        raise UsageError("policy must be an IdentityPolicy or a KeyPolicy",
                         actual=type(policy).__name__)


def _is_rekor_v2(entry: TlogEntry) -> bool:
    """Whether ``entry`` comes from a Rekor v2 log (one index, no promise).

    An entry with an inclusion promise is a Rekor v1 entry: only Rekor v1 signs SETs.
    SPEC: rekor-tiles logs hashedrekord 0.0.2 and dsse 0.0.2 only; Rekor v1's intoto kind
    is also at version 0.0.2, so the version string alone does not tell.
    """
    return entry.signed_entry_timestamp is None and \
        (entry.kind, entry.version) in {("hashedrekord", "0.0.2"), ("dsse", "0.0.2")}


def _check_proof_index(entry: TlogEntry, proof: InclusionProof) -> None:
    """The entry's log index and its inclusion proof's must agree.

    SPEC: Rekor v2 (rekor-tiles) has one index, so they are equal. Rekor v1 numbers entries
    globally across shards while the proof's index is the shard's own
    (sigstore-wire.md §3, §8), so the proof's index cannot exceed the entry's.
    """
    if _is_rekor_v2(entry):
        if proof.log_index != entry.log_index:
            raise TlogInclusionInvalidError("log entry's index differs from its inclusion proof's",
                                            actual=proof.log_index, expected=entry.log_index)
    elif proof.log_index > entry.log_index:
        raise TlogInclusionInvalidError(
            "inclusion proof's (shard) index exceeds the log entry's (global) index",
            actual=proof.log_index, expected=f"<= {entry.log_index}")


def _refuse_duplicate_entries(bundle: Bundle) -> None:
    """SPEC: sigstore-go VerifyArtifactTransparencyLog refuses a bundle listing one entry
    (same log, same index) twice: duplicates would count twice towards a threshold."""
    seen: set[tuple[bytes, int]] = set()
    for entry in bundle.tlog_entries:
        key = (entry.log_id, entry.log_index)
        if key in seen:
            raise BundleMalformedError("bundle lists the same log entry twice",
                                       actual=f"log {entry.log_id.hex()[:16]} index {entry.log_index}")
        seen.add(key)


def _body_digest_algorithm(bundle: Bundle) -> str | None:
    for entry in bundle.tlog_entries:
        try:
            body = parse_entry_body(entry.canonicalized_body, entry.kind, entry.version)
        except Error:
            continue
        if body.digest_algorithm:
            return body.digest_algorithm
    return None


def _as_bundle(bundle: Bundle | str | bytes | dict[str, Any]) -> Bundle:
    if isinstance(bundle, Bundle):
        return bundle
    if isinstance(bundle, dict):
        return Bundle.from_dict(bundle)
    return Bundle.from_json(bundle)

