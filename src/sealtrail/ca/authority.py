"""The certificate authority: short-lived Fulcio-profile code-signing certificates.

Given a verified :class:`~sealtrail.ca.identities.Principal` and a client public key whose
possession was proven, it issues a leaf valid for 10 minutes that names the identity in one
critical SAN, carries the OIDC issuer and claim extensions, and embeds an SCT from the
instance's CT log, obtained through the precertificate flow.

SPEC: sigstore-wire.md §0 (what client verifiers enforce), §1 (requests, profile, client
keys, embedded SCT), §2 (SCT); Fulcio docs/certificate-specification.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail._internal.clock import utcnow
from sealtrail._internal.encoding import b64decode, require_dict
from sealtrail.ca.ctlog import SCT_LIST_OID, CTLog, precert_tbs, sct_list
from sealtrail.ca.identities import (
    IDENTITY_TYPES,
    OTHERNAME_OID,
    IdentityType,
    Principal,
    utf8_der,
)
from sealtrail.ca.token_verifier import IssuerConfig
from sealtrail.errors import CertificateRequestInvalidError, ConfigInvalidError, Error

__all__ = ["CertificateAuthority", "PublicKeyTypes", "embedded_sct_response"]

E = CertificateRequestInvalidError

PublicKeyTypes = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
# What signs certificates and SCTs (never Ed25519: sigstore-wire.md §0, §2).
_IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

LEAF_LIFETIME = timedelta(minutes=10)
# Bounds on untrusted request fields (a CSR or key PEM is well under 4 KiB).
MAX_CSR_BYTES = 64 * 1024
MAX_KEY_PEM_CHARS = 16 * 1024
MAX_PROOF_BYTES = 1024
# SPEC: sigstore-wire.md §1 "Client keys": Fulcio's default registry.
_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_SigningHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
_CURVE_HASHES: dict[str, type[_SigningHash]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def embedded_sct_response(chain: Sequence[x509.Certificate]) -> dict[str, Any]:
    """The Fulcio v2 ``signingCert`` response for ``[leaf, intermediate..., root]``.

    SPEC: sigstore-wire.md §1: ``{"signedCertificateEmbeddedSct": {"chain":
    {"certificates": [leafPEM, intermediatePEM..., rootPEM]}}}``.
    """
    return {"signedCertificateEmbeddedSct": {"chain": {
        "certificates": [_pem(cert) for cert in chain]}}}


def _signing_hash(key: _IssuerKey) -> _SigningHash:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _CURVE_HASHES[key.curve.name]()
    return hashes.SHA256()


def _check_key(key: object) -> PublicKeyTypes:
    """Refuse client keys outside Fulcio's default registry."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise E("unsupported elliptic curve", actual=key.curve.name,
                    expected="P-256, P-384 or P-521")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise E(f"RSA keys under {MIN_RSA_BITS} bits are not allowed", actual=key.key_size,
                    expected=f">= {MIN_RSA_BITS}")
        if key.key_size > MAX_RSA_BITS:
            raise E(f"RSA keys over {MAX_RSA_BITS} bits are not allowed", actual=key.key_size,
                    expected=f"<= {MAX_RSA_BITS}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise E("unsupported public key type", actual=type(key).__name__,
            expected="ECDSA P-256/384/521, RSA 2048-4096 or Ed25519")


def _proof_verifies(key: PublicKeyTypes, signature: bytes, challenge: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``challenge``.

    Fulcio checks ECDSA and RSA PKCS#1 v1.5 proofs with SHA-256 and Ed25519 proofs pure;
    ECDSA proofs hashed with the curve's own hash (SHA-384 for P-384...) are accepted too.
    Either way only the holder of the private key can produce one.
    """
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, challenge)
            return True
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
            return True
    except (InvalidSignature, ValueError):
        return False
    for digest in dict.fromkeys((hashes.SHA256, _CURVE_HASHES[key.curve.name])):
        try:
            key.verify(signature, challenge, ec.ECDSA(digest()))
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


class CertificateAuthority:
    """Issues Fulcio-profile leaf certificates with an embedded SCT.

    ``intermediate_key`` signs leaves; ``chain`` is ``(intermediate, root)`` (or more
    intermediates, nearest first); ``ct_log`` signs the SCTs and, when it keeps a log
    (:attr:`CTLog.keeps_log`), has every precertificate durably logged first (issuance
    then fails with :class:`~sealtrail.errors.ServiceUnavailableError` if the log cannot
    take it, and no certificate is made); ``clock()`` returns an aware
    datetime. ``on_issue(leaf, principal)``, if given, is called after each issuance (to
    record it). Raises :class:`ConfigInvalidError` if the key does not match the chain.
    """

    def __init__(self, intermediate_key: PrivateKeyTypes, chain: Sequence[x509.Certificate],
                 ct_log: CTLog, clock: Callable[[], datetime] = utcnow, *,
                 lifetime: timedelta = LEAF_LIFETIME,
                 on_issue: Callable[[x509.Certificate, Principal], None] | None = None) -> None:
        chain = tuple(chain)
        if len(chain) < 2:
            raise ConfigInvalidError("the CA chain needs the intermediate and the root",
                                     actual=len(chain), expected=">= 2")
        # SPEC: sigstore-wire.md §0: the issuing CA must not be Ed25519; §2: the SCT issuer
        # key must be EC or RSA.
        if not isinstance(intermediate_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise ConfigInvalidError("the CA intermediate key must be ECDSA or RSA",
                                     actual=type(intermediate_key).__name__)
        self._hash = _signing_hash(intermediate_key)
        if intermediate_key.public_key() != chain[0].public_key():
            raise ConfigInvalidError("the CA intermediate key does not match chain[0]")
        self._key = intermediate_key
        self.chain = chain
        self.ct_log = ct_log
        self.clock = clock
        self.lifetime = lifetime
        self._on_issue = on_issue
        self._issuer_spki = chain[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # (The intermediate key's public half, which is chain[0]'s, as checked above.)
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            intermediate_key.public_key())
        # Without a kept CT log (tests, dry runs) the precertificate is never published:
        # it is signed only to obtain its TBS bytes, which depend on the
        # signature *algorithm* (ecdsa-with-SHA384) but not on the key: a P-256 key signs
        # several times faster than P-384. The final certificate is signed with the real key,
        # and issue() checks that its TBS minus the SCT list is exactly what the log signed.
        self._precert_key = (ec.generate_private_key(ec.SECP256R1())
                             if isinstance(intermediate_key, ec.EllipticCurvePrivateKey)
                             else intermediate_key)

    # -- requests ---------------------------------------------------------------------------
    def parse_request(self, body: Any, principal: Principal) -> PublicKeyTypes:
        """The client public key of a Fulcio v2 ``signingCert`` request, possession proven.

        ``body`` holds exactly one of ``certificateSigningRequest`` (base64 of a PEM CSR:
        its self-signature is the proof; its subject is ignored) or ``publicKeyRequest``
        (``{"publicKey": {"algorithm", "content": PEM}, "proofOfPossession": b64}``, a
        signature over ``principal.challenge``, or one of ``principal.alternate_challenges``
        since clients differ). SPEC: sigstore-wire.md §1.
        Raises :class:`CertificateRequestInvalidError`.
        """
        body = require_dict(body, "request body", E)
        csr = body.get("certificateSigningRequest")
        key_request = body.get("publicKeyRequest")
        if (csr is None) == (key_request is None):
            raise E("request needs exactly one of certificateSigningRequest or "
                    "publicKeyRequest")
        if csr is not None:
            return self._from_csr(csr)
        return self._from_key_request(key_request, principal)

    @staticmethod
    def _from_csr(value: Any) -> PublicKeyTypes:
        if isinstance(value, str) and len(value) > MAX_CSR_BYTES * 2:
            raise E("certificateSigningRequest is too large")
        raw = b64decode(value, "certificateSigningRequest", E)
        if len(raw) > MAX_CSR_BYTES:
            raise E("certificateSigningRequest is too large", actual=len(raw))
        try:
            if raw.lstrip().startswith(b"-----BEGIN"):
                csr = x509.load_pem_x509_csr(raw)
            else:
                csr = x509.load_der_x509_csr(raw)  # tolerated: base64 of DER
        except ValueError as exc:
            raise E("certificateSigningRequest is not a PEM certificate request") from exc
        try:
            key = _check_key(csr.public_key())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise E("the certificate request's public key does not parse") from exc
        try:
            valid = csr.is_signature_valid
        except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
            raise E(f"the certificate request's signature cannot be checked: {exc}") from exc
        if not valid:
            raise E("the certificate request's signature does not verify "
                    "(no proof of possession)")
        return key

    @staticmethod
    def _from_key_request(value: Any, principal: Principal) -> PublicKeyTypes:
        request = require_dict(value, "publicKeyRequest", E)
        public_key = require_dict(request.get("publicKey"), "publicKeyRequest.publicKey", E)
        content = public_key.get("content")
        if not isinstance(content, str) or not content:
            raise E("publicKeyRequest.publicKey.content must be a PEM public key")
        if len(content) > MAX_KEY_PEM_CHARS:
            raise E("publicKeyRequest.publicKey.content is too large", actual=len(content))
        try:
            key = serialization.load_pem_public_key(content.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise E("publicKeyRequest.publicKey.content is not a PEM public key") from exc
        key = _check_key(key)
        proof = request.get("proofOfPossession")
        if isinstance(proof, str) and len(proof) > MAX_PROOF_BYTES * 2:
            raise E("publicKeyRequest.proofOfPossession is too large")
        signature = b64decode(proof, "publicKeyRequest.proofOfPossession", E)
        if not signature or len(signature) > MAX_PROOF_BYTES:
            raise E("publicKeyRequest.proofOfPossession has a wrong length", actual=len(signature))
        # SPEC: sigstore-wire.md §1: the proof signs the raw challenge string (the email for
        # email issuers, sub otherwise; some clients sign sub or the email regardless).
        challenges = (principal.challenge, *principal.alternate_challenges)
        if not any(_proof_verifies(key, signature, c.encode()) for c in challenges):
            raise E(f"proof of possession does not verify: it must be the key's signature "
                    f"over the challenge {principal.challenge!r}")
        return key

    # -- issuance ---------------------------------------------------------------------------
    def _extensions(self, public_key: PublicKeyTypes, principal: Principal
                    ) -> list[tuple[x509.ExtensionType, bool]]:
        # SPEC: sigstore-wire.md §1 "Profile": KU digitalSignature (critical), EKU codeSigning
        # (non-critical, §0), SKI, AKI, exactly one SAN (critical: the subject is empty),
        # then the issuer and claim extensions, all non-critical.
        kind, value = principal.san
        if kind == "uri":
            name: x509.GeneralName = x509.UniformResourceIdentifier(value)
        elif kind == "email":
            name = x509.RFC822Name(value)
        elif kind == "othername":
            name = x509.OtherName(x509.ObjectIdentifier(OTHERNAME_OID), utf8_der(value))
        else:
            raise E("unsupported identity kind", actual=kind)
        out: list[tuple[x509.ExtensionType, bool]] = [
            (x509.KeyUsage(digital_signature=True, content_commitment=False,
                           key_encipherment=False, data_encipherment=False, key_agreement=False,
                           key_cert_sign=False, crl_sign=False, encipher_only=False,
                           decipher_only=False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
            (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
            (self._aki, False),
            (x509.SubjectAlternativeName([name]), True),
        ]
        out.extend((x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), raw), False)
                   for oid, raw in principal.extensions.items())
        return out

    @staticmethod
    def _builder(public_key: PublicKeyTypes, issuer: x509.Name, serial: int, not_before: datetime,
                 not_after: datetime, extensions: Sequence[tuple[x509.ExtensionType, bool]]
                 ) -> x509.CertificateBuilder:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder

    def _issue_leaf(self, public_key: PublicKeyTypes, principal: Principal, *,
                    signer: _IssuerKey, precert_signer: _IssuerKey, ct_log: CTLog, issuer_spki: bytes) -> x509.Certificate:
        now = self.clock().astimezone(timezone.utc)
        # X.509 times have second precision; the SCT keeps milliseconds.
        not_before = now.replace(microsecond=0)
        not_after = not_before + self.lifetime
        # SPEC: sigstore-wire.md §1: a random positive serial of at most 20 bytes
        # (cryptography: 159 random bits).
        serial = x509.random_serial_number()
        extensions = self._extensions(public_key, principal)
        issuer = self.chain[0].subject
        timestamp_ms = int((now - datetime(1970, 1, 1, tzinfo=timezone.utc))
                           / timedelta(milliseconds=1))
        try:
            # SPEC: sigstore-wire.md §1 "Embedded SCT", §2: the log signs the TBS of the
            # certificate without the SCT list (= the precertificate's TBS without poison);
            # the final certificate re-signs the same TBS with the SCT list appended last.
            if ct_log.keeps_log:
                # SPEC: RFC 6962 §3.1: the logged precertificate carries the critical poison
                # extension and is signed by the issuing CA itself, so that a monitor can
                # check it against the issuer the log serves (static-ct-api issuer/).
                precert = self._builder(public_key, issuer, serial, not_before, not_after,
                                        [*extensions, (x509.PrecertPoison(), True)]
                                        ).sign(signer, self._hash)
                precert_der = precert.public_bytes(serialization.Encoding.DER)
                signed_tbs = precert_tbs(precert_der)
                # Returns only once the entry is durably sequenced (ServiceUnavailableError
                # otherwise: then no certificate is made).
                sct = ct_log.log_precert(signed_tbs, precert_der, self.chain, timestamp_ms)
            else:
                precert = self._builder(public_key, issuer, serial, not_before, not_after,
                                        extensions).sign(precert_signer, self._hash)
                signed_tbs = precert.tbs_certificate_bytes
                sct = ct_log.sign_precert(signed_tbs, issuer_spki, timestamp_ms)
            sct_extension = x509.UnrecognizedExtension(
                x509.ObjectIdentifier(SCT_LIST_OID), core.OctetString(sct_list([sct])).dump())
            leaf = self._builder(public_key, issuer, serial, not_before, not_after,
                                 [*extensions, (sct_extension, False)]).sign(signer, self._hash)
        except (ValueError, TypeError) as exc:
            raise E(f"cannot issue a certificate for this identity: {exc}") from exc
        if leaf.tbs_precertificate_bytes != signed_tbs:
            # Never hand out a certificate whose SCT does not verify.
            raise Error("internal error: the final TBS differs from the one the CT log signed")
        return leaf

    def issue(self, public_key: PublicKeyTypes, principal: Principal) -> list[x509.Certificate]:
        """Issue a leaf for ``public_key`` naming ``principal``; return [leaf, *chain].

        ``public_key`` must come from :meth:`parse_request` (possession proven).
        """
        key = _check_key(public_key)
        leaf = self._issue_leaf(key, principal, signer=self._key,
                                precert_signer=self._precert_key, ct_log=self.ct_log,
                                issuer_spki=self._issuer_spki)
        if self._on_issue is not None:
            self._on_issue(leaf, principal)
        return [leaf, *self.chain]

    def dry_run(self, principal: Principal, public_key: PublicKeyTypes | None = None) -> x509.Certificate:
        """The certificate that :meth:`issue` would produce for ``principal``, to inspect.

        Same profile, names and extensions, but signed by a throwaway issuer key with an
        SCT from a throwaway CT log: it never verifies against this instance's trust root,
        so a dry run (which proves no key possession) cannot mint a usable certificate.
        ``public_key`` defaults to a throwaway P-256 key.
        """
        key = _check_key(public_key or ec.generate_private_key(ec.SECP256R1()).public_key())
        throwaway = (ec.generate_private_key(self._key.curve)
                     if isinstance(self._key, ec.EllipticCurvePrivateKey)
                     else rsa.generate_private_key(65537, self._key.key_size))
        throwaway_log = CTLog(ec.generate_private_key(ec.SECP256R1()))
        spki = throwaway.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return self._issue_leaf(key, principal, signer=throwaway, precert_signer=throwaway,
                                ct_log=throwaway_log, issuer_spki=spki)

    # -- discovery documents ----------------------------------------------------------------
    def trust_bundle(self) -> dict[str, Any]:
        """``GET /api/v2/trustBundle``: ``{"chains": [{"certificates": [PEM...]}]}``."""
        return {"chains": [{"certificates": [_pem(cert) for cert in self.chain]}]}

    @staticmethod
    def configuration(issuers: Sequence[IssuerConfig],
                      identity_types: Mapping[str, IdentityType] | None = None
                      ) -> dict[str, Any]:
        """``GET /api/v2/configuration`` (SPEC: sigstore-wire.md §1).

        ``{"issuers": [{"issuerUrl" | "wildcardIssuerUrl", "audience", "challengeClaim",
        "issuerType", "spiffeTrustDomain"?, "subjectDomain"?}]}``.
        """
        types = dict(IDENTITY_TYPES)
        types.update(identity_types or {})
        entries = []
        for issuer in issuers:
            identity = types.get(issuer.issuer_type)
            entry: dict[str, Any] = {
                "wildcardIssuerUrl" if issuer.wildcard else "issuerUrl": issuer.url,
                "audience": issuer.audience,
                "challengeClaim": identity.challenge_claim if identity else "sub",
                "issuerType": issuer.issuer_type,
            }
            if issuer.spiffe_trust_domain is not None:
                entry["spiffeTrustDomain"] = issuer.spiffe_trust_domain
            if issuer.subject_domain is not None:
                entry["subjectDomain"] = issuer.subject_domain
            entries.append(entry)
        return {"issuers": entries}

