"""The signer: certificates, signatures, timestamps, log entries and verified bundles.

Keyless flow (``Signer(context, identity_token=...)``), in this order:

1. make an ephemeral ECDSA P-256 key and a CSR for it (empty subject: the identity comes
   from the token);
2. ask the CA for a certificate (or read the answer to a request sent before the signer was
   made, :mod:`sealtrail.sign.certificate_request`); check that it certifies *our* key, and
   verify the leaf's profile, its chain to a CA of the trusted root and its embedded SCT
   against the trusted CT logs, before signing anything (``verify_certificate``);
3. for every artifact, in parallel worker threads under that one certificate: sign the
   SHA-256 digest, have every selected TSA timestamp the signature while the log records a
   hashedrekord entry (Rekor v1 ``hashedrekord 0.0.1`` or Rekor v2
   ``hashedRekordRequestV002``; the two requests are in flight at once, since neither needs
   the other's answer), build a v0.3 bundle, and verify that bundle with
   :class:`sealtrail.verify.verifier.Verifier` against the trusted root. Only verified
   bundles are returned.

Threads come from :mod:`concurrent.futures` (docs/adr/0011): per :meth:`Signer.sign_many`
call, one pool signs and logs, one holds the timestamp requests, and one thread verifies.

An in-toto statement is signed the same way as a DSSE envelope (signature over PAE),
logged as Rekor v1 ``dsse 0.0.1`` or, for Rekor v2, as hashedrekord over SHA-256(PAE) as
sigstore-python and cosign do.

With a managed key (``Signer(context, private_key=...)``) there is no certificate: the
bundle names the key by a hint, the entry is still logged, and verification uses the key.

SPEC: sigstore-wire.md §1 (CSR request), §3/§4 (entry requests), §5 (timestamps), §7
(bundle v0.3: ``certificate`` holds the leaf only); DSSE v1 (PAE).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from sealtrail._internal.clock import utcnow
from sealtrail._internal.files import digest_file
from sealtrail.errors import (
    CertChainInvalidError,
    CertProfileInvalidError,
    Error,
    KeyMismatchError,
    LogEntryInvalidError,
    LogError,
    UsageError,
)
from sealtrail.models.bundle import DSSEEnvelope
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.sign.certificate_request import CertificateRequest
from sealtrail.sign.context import SigningContext
from sealtrail.sign.keys import KEY_DETAILS, public_key_pem
from sealtrail.sign import DEFAULT_WORKERS, MAX_WORKERS
from sealtrail.sign.statement import INTOTO_PAYLOAD_TYPE
from sealtrail.net.http import HttpClient, http_client
from sealtrail.identity.tokens import IdentityToken
from sealtrail.clients.rekor import RekorV1Client, RekorV2Client
from sealtrail.clients.tsa import TSAClient
# The bundles made here carry timestamps: the verifier's timestamp module (which the verifier
# imports on first use) is loaded now, not by the verifying thread while the workers compete
# for the interpreter (1-3.5 ms measured there).
from sealtrail.verify import _timestamp  # noqa: F401
from sealtrail.verify._certificate import verify_certificate
from sealtrail.verify.policy import IdentityPolicy, KeyPolicy
from sealtrail.verify.verifier import Artifact, VerificationResult, Verifier

__all__ = ["BUNDLE_MEDIA_TYPE", "DEFAULT_WORKERS", "SignedArtifact", "Signer", "hash_file"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# How far the CA's clock may run ahead of ours before a fresh certificate looks "not yet
# valid" to us; within this, the certificate is checked at its own notBefore.
_CLOCK_SKEW = timedelta(minutes=2)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_file(path: str) -> bytes:
    """SHA-256 of the file at ``path``, streamed; :class:`InputError` if it cannot be read."""
    return digest_file(path, ("sha256",), what="file")["sha256"]


class SignedArtifact(NamedTuple):
    """One signed and verified result."""

    name: str
    bundle: dict[str, Any]
    signature: bytes
    certificate: x509.Certificate | None
    log_index: int
    digest: bytes | None  # the artifact's SHA-256 (None for a DSSE statement)

    def bundle_json(self) -> bytes:
        """The bundle as JSON bytes, ready to write."""
        # Compact, like other Sigstore clients: with indent=, json falls back to its pure-
        # Python encoder, which cost a quarter of the signer's time per file.
        return json.dumps(self.bundle, separators=(",", ":")).encode() + b"\n"


class _Signing(NamedTuple):
    """What every bundle of one signer repeats, encoded once: the verifier as the logs take
    it, and the policy the new bundles must satisfy."""

    verifier_der_b64: str  # Rekor v2 rawBytes: the certificate (DER), else the key (SPKI)
    verifier_pem_b64: str  # Rekor v1 publicKey.content: base64 of the PEM
    certificate_b64: str | None  # bundle certificate.rawBytes (keyless)
    key_hint_b64: str | None  # bundle publicKey.hint (managed key)
    policy: IdentityPolicy | KeyPolicy


class Signer:
    """Signs artifacts and statements under one key (and one certificate when keyless).

    Exactly one of ``identity_token`` (keyless), ``certificate_request`` (keyless, the CA
    asked already: a :class:`~sealtrail.sign.certificate_request.CertificateRequest` to the
    context's CA, whose key and token are used) or ``private_key`` (managed key) is given.
    ``max_workers`` is how many files :meth:`sign_many` has in flight at once (each with its
    timestamp and log requests). ``http`` replaces the HTTP client (tests pass one over a fake transport);
    ``clock`` replaces the wall clock. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, context: SigningContext, *,
                 identity_token: IdentityToken | str | None = None,
                 private_key: ec.EllipticCurvePrivateKey | None = None,
                 certificate_request: CertificateRequest | None = None,
                 max_workers: int = DEFAULT_WORKERS, http: HttpClient | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if sum(given is not None for given in (identity_token, private_key,
                                               certificate_request)) != 1:
            raise UsageError("sign either keyless (with an identity token, or a certificate "
                             "request already sent) or with a key")
        if certificate_request is not None and certificate_request.ca_url != context.ca_url:
            raise UsageError("the certificate request went to another CA than the signing "
                             "context's", actual=certificate_request.ca_url,
                             expected=context.ca_url)
        if not 1 <= max_workers <= MAX_WORKERS:
            raise UsageError("worker count out of range", actual=max_workers,
                             expected=f"1..{MAX_WORKERS}")
        self.context = context
        self._clock = clock
        self._max_workers = max_workers
        # One client for every service; each worker thread keeps its own connections.
        self._http = http or http_client()
        self._owns_http = http is None
        if isinstance(identity_token, str):
            identity_token = IdentityToken.parse(identity_token)
        self._request = certificate_request
        if certificate_request is not None:
            identity_token = certificate_request.token
        self._token = identity_token
        self._managed = private_key is not None
        self._key = (certificate_request.key if certificate_request is not None
                     else private_key or ec.generate_private_key(ec.SECP256R1()))
        self._certificate: x509.Certificate | None = None
        self._identity: FulcioIdentity | None = None
        self._signing: _Signing | None = self._encode(None) if self._managed else None
        self._lock = threading.Lock()
        self._tsas = [TSAClient(url, self._http) for url in context.tsa_urls]
        log_class = RekorV1Client if context.rekor_version == 1 else RekorV2Client
        self._log = log_class(context.rekor_url, self._http)
        # One verifier keeps its memo of passed checks (the certificate chain, checkpoints)
        # across bundles; a test clock gets a verifier per bundle instead.
        self._verifier = Verifier(context.trusted_root) if clock is utcnow else None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> "Signer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the HTTP connections (if this signer made the client)."""
        if self._owns_http:
            self._http.close()

    # -- the key and certificate --------------------------------------------------------
    @property
    def public_key_pem(self) -> bytes:
        """The signing key's public half (SPKI PEM)."""
        return public_key_pem(self._key)

    @property
    def identity(self) -> FulcioIdentity | None:
        """The certified identity, once :meth:`certificate` has been obtained (keyless)."""
        return self._identity

    def _create_entry(self, request: dict[str, Any]) -> dict[str, Any]:
        """Log ``request``; a 409 from a Rekor v2 log (our earlier attempt, whose answer was
        lost) is recovered from the log's tiles. Rekor v1 clients fetch it themselves."""
        try:
            return self._log.create_entry(request)
        except LogEntryInvalidError as exc:
            index = exc.actual
            if self.context.rekor_version != 2 or not (isinstance(index, str) and index.isdigit()):
                raise
            from sealtrail.sign.recover import recover_v2_entry

            return recover_v2_entry(self.context.rekor_url, int(index), self.context.trusted_root,
                                    self._http)

    def certificate(self) -> x509.Certificate | None:
        """The verified signing certificate (obtained on first use); None with a managed key.

        Raises :class:`TokenInvalidError` for an expired or refused token, errors from the
        CA client, :class:`KeyMismatchError` if the CA certified another key, and
        :class:`CertProfileInvalidError` / :class:`CertChainInvalidError` /
        :class:`SCTInvalidError` if the certificate does not verify against the trusted root.
        """
        if self._managed:
            return None
        with self._lock:
            if self._certificate is None:
                certificate, self._identity = self._obtain_certificate()
                self._signing = self._encode(certificate)
                self._certificate = certificate
            return self._certificate

    def _obtain_certificate(self) -> tuple[x509.Certificate, FulcioIdentity]:
        assert self._token is not None
        now = self._clock()
        # One path for both: a request sent before the signer was made, or one sent now
        # (which checks a read token's expiry first, and explains a refused unread one).
        request = self._request or CertificateRequest(self.context, self._token, key=self._key,
                                                      http=self._http, now=now)
        issued = request.result()
        leaf = issued.leaf
        ours = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if ours != theirs:
            raise KeyMismatchError(f"the CA at {self.context.ca_url} certified another key than "
                                   "the one in the request",
                                   actual=hashlib.sha256(theirs).hexdigest()[:16],
                                   expected=hashlib.sha256(ours).hexdigest()[:16])
        at = now
        if now < leaf.not_valid_before_utc <= now + _CLOCK_SKEW:
            at = leaf.not_valid_before_utc
        root = self.context.trusted_root
        # Before anything is signed: the certificate must be one a verifier will accept.
        verify_certificate(leaf, root.certificate_authorities, root.ctlogs, at)
        identity = FulcioIdentity.from_certificate(leaf)
        if identity.issuer is None:
            raise CertProfileInvalidError("the CA issued a certificate without an OIDC issuer "
                                          "extension, which verifiers require")
        return leaf, identity

    # -- signing --------------------------------------------------------------------------
    def sign_digest(self, digest: bytes, name: str = "artifact") -> SignedArtifact:
        """Sign one artifact given by its SHA-256 ``digest``; return the verified bundle."""
        with self._timestamping(1) as timestamping:
            return self._checked(self._unchecked(digest, name, timestamping))

    def _unchecked(self, digest: bytes, name: str, timestamping: Executor) -> "_Unchecked":
        """Sign, timestamp and log ``digest``: a bundle that :meth:`_checked` must verify
        before anyone sees it. ``timestamping`` runs the timestamp requests."""
        if len(digest) != 32:
            raise UsageError("a SHA-256 digest has 32 bytes", actual=len(digest), expected=32)
        certificate = self.certificate()
        self._check_still_valid(certificate)
        signature = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        entry, timestamps = self._logged_and_timestamped(
            self._hashedrekord_request(digest, signature), signature, timestamping)
        bundle = self._bundle(entry, timestamps, "messageSignature", {
            "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
            "signature": _b64(signature),
        })
        return _Unchecked(name, bundle, signature, certificate, digest)

    def _checked(self, unchecked: "_Unchecked") -> SignedArtifact:
        """The verified result of :meth:`_unchecked` (or the error of the failed check)."""
        name, bundle, signature, certificate, digest = unchecked
        result = self._verify(bundle, lambda v, p: v.verify_artifact(
            Artifact({"sha256": digest}), bundle, p))
        return SignedArtifact(name, bundle, signature, certificate, self._index(result),
                              digest)

    def sign_file(self, path: str) -> SignedArtifact:
        """Hash and sign the file at ``path``."""
        return self.sign_digest(hash_file(path), path)

    def sign_statement(self, payload: bytes, name: str = "statement",
                       payload_type: str = INTOTO_PAYLOAD_TYPE) -> SignedArtifact:
        """Sign a DSSE envelope over ``payload`` (an in-toto statement); return the bundle."""
        certificate = self.certificate()
        self._check_still_valid(certificate)
        envelope = DSSEEnvelope(payload, payload_type, ())
        pae = envelope.pae()
        # SPEC: DSSE v1: the signature covers PAE(payloadType, payload).
        signature = self._key.sign(pae, ec.ECDSA(hashes.SHA256()))
        envelope_json = {"payload": _b64(payload), "payloadType": payload_type,
                         "signatures": [{"sig": _b64(signature)}]}
        if self.context.rekor_version == 1:
            # SPEC: sigstore-wire.md §3 dsse 0.0.1: the envelope as a JSON string plus the
            # verifiers (base64 PEM); the log checks the signature over PAE.
            request = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
                "envelope": json.dumps(envelope_json, separators=(",", ":")),
                "verifiers": [self._encoded().verifier_pem_b64]}}}
        else:
            # SPEC: sigstore-wire.md §4: rekor-tiles takes DSSE as hashedrekord over H(PAE).
            request = self._hashedrekord_request(hashlib.sha256(pae).digest(), signature)
        with self._timestamping(1) as timestamping:
            entry, timestamps = self._logged_and_timestamped(request, signature, timestamping)
        bundle = self._bundle(entry, timestamps, "dsseEnvelope", envelope_json)
        result = self._verify(bundle, lambda v, p: v.verify_dsse(bundle, p))
        return SignedArtifact(name, bundle, signature, certificate, self._index(result),
                              None)

    def sign_many(self, items: Sequence[tuple[str, bytes | None]],
                  on_done: Callable[[SignedArtifact], None] | None = None
                  ) -> list[SignedArtifact]:
        """Sign many artifacts under one certificate, logging them in parallel.

        ``items`` are ``(name, sha256 digest)``, or ``(path, None)`` to hash the file.
        ``on_done`` is called from the verifying thread (so one call at a time) as each
        bundle is verified; its failure fails the run like a signing failure.
        Results come back in the order of ``items``. The first failure stops the run: work
        not yet started is not done, and the failure of the lowest item index is raised
        (with its class, code and evidence), prefixed with the item's name. Whether it
        returns or raises, no thread of the run is left running.
        """
        if not items:
            return []
        self.certificate()  # one certificate, verified before any signature
        results: list[SignedArtifact | None] = [None] * len(items)
        stop = threading.Event()  # set by the first failure: start nothing new
        workers = min(self._max_workers, len(items))
        # The workers sign, timestamp and log; one thread verifies every new bundle and only
        # then reports it. Measured (ADR 0009): verifying in the 16 workers cost about 0.3 ms
        # more client CPU per file than in one thread, from interpreter-lock hand-offs (the
        # cryptography calls release it), and kept each worker from its next file.
        verifying = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sealtrail-verify")

        def check(index: int, unchecked: _Unchecked) -> None:
            if stop.is_set():
                return  # the run is lost: do not verify nor report
            try:
                result = self._checked(unchecked)
                if on_done is not None:
                    on_done(result)
            except BaseException as exc:
                stop.set()
                raise _named(exc, unchecked.name)  # noqa: B904 - _named keeps the cause
            results[index] = result

        def sign(index: int, timestamping: Executor) -> Future[None] | None:
            if stop.is_set():
                return None  # another item failed
            name, digest = items[index]
            try:
                unchecked = self._unchecked(digest if digest is not None else hash_file(name),
                                            name, timestamping)
            except BaseException as exc:
                stop.set()
                raise _named(exc, name)  # noqa: B904 - _named keeps the cause
            return verifying.submit(check, index, unchecked)

        signed: list[Future[Future[None] | None]] = []
        try:
            with self._timestamping(workers) as timestamping:
                signing = ThreadPoolExecutor(max_workers=workers,
                                             thread_name_prefix="sealtrail-sign")
                try:
                    signed.extend(signing.submit(sign, index, timestamping)
                                  for index in range(len(items)))
                    signing.shutdown(wait=True)
                except BaseException:  # e.g. Ctrl-C while waiting: start nothing new
                    stop.set()
                    signing.shutdown(wait=True, cancel_futures=True)
                    raise
        finally:
            verifying.shutdown(wait=True)  # every check was submitted before signing ended
        _raise_lowest(signed)
        return results  # type: ignore[return-value]  # every slot is filled when none failed

    @contextmanager
    def _timestamping(self, files: int) -> Iterator[Executor]:
        """Threads for the timestamp requests of ``files`` files in flight (one per TSA
        each), all ended when the block is left."""
        pool = ThreadPoolExecutor(max_workers=max(1, files * len(self._tsas)),
                                  thread_name_prefix="sealtrail-timestamp")
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- pieces ---------------------------------------------------------------------------
    def _check_still_valid(self, certificate: x509.Certificate | None) -> None:
        if certificate is not None and self._clock() >= certificate.not_valid_after_utc:
            raise CertChainInvalidError(
                "the signing certificate expired during the run; sign fewer files at once",
                actual=self._clock().isoformat(),
                expected=f"before {certificate.not_valid_after_utc.isoformat()}")

    def _logged_and_timestamped(self, request: dict[str, Any], signature: bytes,
                                timestamping: Executor) -> tuple[dict[str, Any], list[bytes]]:
        """Log ``request`` while every TSA timestamps ``signature``: the log entry and its
        timestamps, once both have come back.

        SPEC: sigstore-wire.md §3/§4: a log entry carries the signature and the verifier
        (certificate or key), never a timestamp; §5/§7: the TSA token covers the signature
        bytes. Neither request needs the other's answer, so both are in flight at once: a
        file costs one round trip instead of two. A failed timestamp is reported before a
        failed log request (as when the timestamps were asked first); either way this
        returns only once every request of the file has ended.
        """
        pending = [timestamping.submit(tsa.timestamp, signature) for tsa in self._tsas]
        try:
            entry = self._create_entry(request)
        finally:
            timestamps = [future.result().der for future in pending]
        return entry, timestamps

    def _encode(self, certificate: x509.Certificate | None) -> _Signing:
        if certificate is not None:
            der = certificate.public_bytes(serialization.Encoding.DER)
            pem = certificate.public_bytes(serialization.Encoding.PEM)
            assert self._identity is not None and self._identity.issuer is not None
            return _Signing(_b64(der), _b64(pem), _b64(der), None, IdentityPolicy(
                identity=self._identity.san, issuer=self._identity.issuer))
        spki = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        pem = self.public_key_pem
        return _Signing(_b64(spki), _b64(pem), None, _b64(hashlib.sha256(spki).digest()),
                        KeyPolicy(pem))

    def _encoded(self) -> _Signing:
        assert self._signing is not None, "certificate() comes first"
        return self._signing

    def _hashedrekord_request(self, digest: bytes, signature: bytes) -> dict[str, Any]:
        if self.context.rekor_version == 1:
            # SPEC: sigstore-wire.md §3 hashedrekord 0.0.1: hex digest, base64 PEM verifier.
            return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": _b64(signature),
                              "publicKey": {"content": self._encoded().verifier_pem_b64}},
            }}
        # SPEC: sigstore-wire.md §4 hashedRekordRequestV002 (keyDetails inside the verifier).
        encoded = self._encoded()
        raw = {"rawBytes": encoded.verifier_der_b64}
        verifier: dict[str, Any] = ({"x509Certificate": raw} if encoded.certificate_b64
                                    else {"publicKey": raw})
        verifier["keyDetails"] = KEY_DETAILS
        return {"hashedRekordRequestV002": {"digest": _b64(digest), "signature": {
            "content": _b64(signature), "verifier": verifier}}}

    def _bundle(self, entry: dict[str, Any], timestamps: list[bytes], content_key: str,
                content: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise LogError("the log answered with something other than an entry")
        material: dict[str, Any] = {}
        encoded = self._encoded()
        if encoded.certificate_b64 is not None:
            # SPEC: sigstore-wire.md §7: a v0.3 bundle carries the leaf only.
            material["certificate"] = {"rawBytes": encoded.certificate_b64}
        else:
            material["publicKey"] = {"hint": encoded.key_hint_b64}
        material["tlogEntries"] = [entry]
        if timestamps:
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": _b64(t)} for t in timestamps]}
        return {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material,
                content_key: content}

    def _verify(self, bundle: dict[str, Any],
                check: Callable[[Verifier, IdentityPolicy | KeyPolicy], VerificationResult]
                ) -> VerificationResult:
        verifier = self._verifier or Verifier(self.context.trusted_root, now=self._clock())
        try:
            result = check(verifier, self._encoded().policy)
        except Error as exc:
            # The services answered, but what they produced does not verify: say so plainly,
            # keeping the class and code of the check that failed.
            raise type(exc)(f"the new bundle does not verify against the trusted root: "
                            f"{exc.message}", expected=exc.expected, actual=exc.actual) from exc
        return result

    @staticmethod
    def _index(result: VerificationResult) -> int:
        # Every bundle made here holds the entry just logged, and the verifier checks each
        # entry a bundle holds (one from a log outside the root is TLOG_KEY_UNKNOWN).
        assert result.log_index is not None
        return result.log_index


class _Unchecked(NamedTuple):
    """A signed and logged artifact whose bundle is not verified yet."""

    name: str
    bundle: dict[str, Any]
    signature: bytes
    certificate: x509.Certificate | None
    digest: bytes


def _named(exc: BaseException, name: str) -> BaseException:
    """``exc`` for the item ``name``: a sealtrail error becomes the same error (class, code,
    evidence) with the name in front of its message and the original as its cause; anything
    else stays as it is."""
    if not isinstance(exc, Error):
        return exc
    try:
        named = type(exc)(f"{name}: {exc.message}", expected=exc.expected, actual=exc.actual)
    except TypeError:  # pragma: no cover - every sealtrail error takes these arguments
        return exc
    named.__cause__ = exc
    return named


def _raise_lowest(signed: Sequence[Future[Future[None] | None]]) -> None:
    """Raise the failure of the lowest item index, if any: ``signed[i]`` is item i's signing
    (whose result is its verification, or None when it was skipped)."""
    for future in signed:
        if future.cancelled():
            continue
        error = future.exception()
        if error is None:
            check = future.result()
            if check is None or check.cancelled():
                continue
            error = check.exception()
        if error is not None:
            raise error
