"""Asking the CA for the signing certificate while the signer loads.

:class:`CertificateRequest` sends the certificate request (an ephemeral key's CSR and the
identity token) from a background thread as soon as it is made, and hands over the CA's
answer when asked for it. The CLI makes one right after it has a token and then loads the
signer's modules (the verifier, the timestamp and log clients) while the CA works; the
:class:`~sealtrail.sign.signer.Signer` it is handed to reads the answer and verifies it
against the trusted root before anything is signed. Nothing here trusts the answer.

Why: at the start of ``sealtrail sign``, the CA round trip and the signer's imports (about
20 ms on the 2-core benchmark machine) would otherwise come one after the other on the path
of every run. Against a remote CA, whose round trip outlasts the imports, the imports
disappear from the run. The thread holds the interpreter lock only while it builds the
request and parses the answer; it waits for the CA with the lock released.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail._internal.clock import utcnow
from sealtrail.clients.ca import CAClient, SigningCertificate
from sealtrail.errors import TokenInvalidError, UsageError
from sealtrail.identity.tokens import IdentityToken
from sealtrail.net.http import HttpClient, http_client
from sealtrail.sign.context import SigningContext

__all__ = ["CertificateRequest", "signing_request"]


def signing_request(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    """The CSR that asks the CA to certify ``key``.

    SPEC: sigstore-wire.md §1: sigstore-python sends a P-256 CSR with an empty subject (the
    identity comes from the token); the CSR's self-signature is the proof of possession.
    """
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


class CertificateRequest:
    """A certificate request to the CA of ``context``, sent (in a background thread) when it
    is made.

    A token whose claims are read (:meth:`IdentityToken.parse`) has its expiry checked
    first: an expired one is refused with its expiry and nothing is sent. An unread token
    (:meth:`IdentityToken.unread`, as the CLI passes it: reading loads PyJWT) goes as it
    is; if the CA refuses it, its claims are read then, so that an expired or malformed
    token is reported as such. ``key`` is the ephemeral key to certify (a fresh P-256 key
    by default); ``now`` replaces the clock, ``http`` the HTTP client (otherwise one of its
    own, closed once the answer is read). Read the answer with :meth:`result` (from one
    thread at a time).
    """

    def __init__(self, context: SigningContext, token: IdentityToken, *,
                 key: ec.EllipticCurvePrivateKey | None = None, http: HttpClient | None = None,
                 now: datetime | None = None) -> None:
        if token.is_read:
            token.check_fresh(now or utcnow())
        self._now = now
        self.ca_url = context.ca_url
        self.token = token
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self._http = http or http_client()
        self._owns_http = http is None
        csr = signing_request(self.key)
        answer: Future[SigningCertificate] = Future()
        client = CAClient(self.ca_url, self._http)

        def ask() -> None:
            answer.set_running_or_notify_cancel()
            try:
                answer.set_result(client.request_certificate(csr, token.raw))
            except BaseException as exc:  # noqa: BLE001 - handed to result()'s caller
                answer.set_exception(exc)

        # A daemon thread, not an executor's: a command that fails before it reads the
        # answer must not wait at exit for a CA that is slow to answer.
        threading.Thread(target=ask, name="sealtrail-ca", daemon=True).start()
        self._answer: Future[SigningCertificate] | None = answer
        self._issued: SigningCertificate | None = None

    def result(self) -> SigningCertificate:
        """The CA's answer, waiting for it (errors as ``CAClient.request_certificate``); the
        same answer on later calls."""
        if self._issued is None:
            answer, self._answer = self._answer, None
            if answer is None:
                raise UsageError("this certificate request failed already; make a new one")
            try:
                self._issued = answer.result()
            except TokenInvalidError:
                if not self.token.is_read:
                    # Say why, when the token says it: expired (and when), or not a JWT.
                    self.token.check_fresh(self._now or utcnow())
                raise
            finally:
                if self._owns_http:
                    self._http.close()
        return self._issued
