"""``sealtrail verify-vsa`` (slsa-verifier's verify-vsa) and the ``--vsa-out`` writer.

``verify-vsa`` checks a verification summary attestation: a bare DSSE envelope signed by a
public key (``--public-key-path``), as slsa-verifier does, or a Sigstore bundle whose DSSE
envelope is the VSA, verified keyless (identity flags and a trusted root, as ``verify``
takes them). Success prints ``Verifying VSA: PASSED`` on stderr; a failure prints
``Verifying VSA: FAILED: <ErrorName>: <details>`` and exits 1 (2 for unreadable input).

``add_vsa_out_arguments(parser)`` and ``write_vsa(args, ...)`` let ``verify-artifact`` and
``verify-attestation`` write a VSA after a successful check (docs/provenance.md,
"verify-vsa and --vsa-out").

Only the standard library at the top: the CLI imports this module for its parser.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_DESCRIPTION = (
    "Verify a verification summary attestation (VSA) as slsa-verifier verify-vsa does: the "
    "DSSE signature with --public-key-path (signatures naming another key id are skipped), "
    "the statement and predicate type, every --subject-digest, --verifier-id, --resource-uri, "
    "verificationResult PASSED and each --verified-level (SLSA track levels are minimums). "
    "A Sigstore bundle holding the VSA is verified keyless instead, with the identity flags "
    "and trusted root flags of `sealtrail verify`. Offline.")


def add_arguments(parser: Any) -> None:
    """The flags of ``verify-vsa``: slsa-verifier's, then those a keyless bundle needs."""
    parser.description = _DESCRIPTION
    parser.add_argument("--attestation-path", required=True, metavar="P",
                        help="the VSA: a DSSE envelope (JSON), or a Sigstore bundle holding one")
    parser.add_argument("--subject-digest", action="append", required=True, metavar="ALG:VALUE",
                        help="a digest a subject of the VSA must carry (repeatable; all must "
                             "be found)")
    parser.add_argument("--verifier-id", required=True, metavar="ID",
                        help="the expected predicate.verifier.id")
    parser.add_argument("--resource-uri", required=True, metavar="URI",
                        help="the expected predicate.resourceUri")
    parser.add_argument("--public-key-path", metavar="K",
                        help="PEM public key of the VSA's signer (ECDSA P-256/P-384/P-521, "
                             "Ed25519, RSA); required for a DSSE envelope")
    parser.add_argument("--public-key-id", metavar="ID",
                        help="the key id signatures must name (default: SHA256: + unpadded "
                             "base64 of the SHA-256 of the key's DER SubjectPublicKeyInfo)")
    parser.add_argument("--verified-level", action="append", default=[], metavar="L",
                        help="a level the VSA must list (repeatable): SLSA_<TRACK>_LEVEL_<n> "
                             "is met by that level or a higher one of the track; other "
                             "values must appear as given")
    parser.add_argument("--print-attestation", action="store_true",
                        help="print the verified statement (JSON) on stdout")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    keyless = parser.add_mutually_exclusive_group()
    keyless.add_argument("--certificate-identity", "--cert-identity", metavar="ID",
                         help="bundle: expected certificate identity (SAN), exact")
    keyless.add_argument("--certificate-identity-regexp", "--cert-identity-regex", metavar="RE",
                         help="bundle: expected certificate identity, as a regular expression")
    issuer = parser.add_mutually_exclusive_group()
    issuer.add_argument("--certificate-oidc-issuer", "--cert-oidc-issuer", metavar="URL",
                        help="bundle: expected OIDC issuer, exact")
    issuer.add_argument("--certificate-oidc-issuer-regexp", metavar="RE",
                        help="bundle: expected OIDC issuer, as a regular expression")
    root = parser.add_mutually_exclusive_group()
    root.add_argument("--trusted-root", metavar="FILE",
                      help="bundle: trusted_root.json (default: public-good's newest verified "
                           "root)")
    root.add_argument("--staging", action="store_true",
                      help="bundle: the public-good staging trust root")
    root.add_argument("--instance", metavar="NAME",
                      help="bundle: the newest verified trust root of an instance")
    root.add_argument("--trust-config", metavar="FILE",
                      help="bundle: the trusted root of a client trust config")
    root.add_argument("--instance-dir", metavar="DIR",
                      help="bundle: the trust config of a local instance (`sealtrail init`)")


def run(args: Any) -> int:
    """Verify the VSA; print slsa-verifier's line; return the exit status."""
    from sealtrail.errors import Error

    options, key = _options(args)  # flag errors: a usage line from main, exit 2
    try:
        verified = _verify(args, options, key)
    except Error as exc:
        print(f"Verifying VSA: FAILED: {exc.code}: {exc.diagnostics()}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, **exc.to_json()}, sort_keys=True))
        return exc.exit_code
    if args.print_attestation:
        sys.stdout.write(verified.payload.decode("utf-8", "replace") + "\n")
    if args.json:
        print(json.dumps({
            "ok": True,
            "result": "PASSED",
            "attestation_path": args.attestation_path,
            "verifier_id": verified.verifier_id,
            "resource_uri": verified.resource_uri,
            "verified_levels": list(verified.verified_levels),
            "time_verified": (verified.time_verified.strftime("%Y-%m-%dT%H:%M:%SZ")
                              if verified.time_verified else None),
            "key_id": verified.key_id,
            "subjects": verified.statement["subject"],
        }, sort_keys=True))
    print("Verifying VSA: PASSED", file=sys.stderr)
    return 0


def _options(args: Any) -> tuple[Any, Any]:
    from sealtrail.provenance.vsa import VSAOptions, parse_level, parse_subject_digest

    digests = tuple(parse_subject_digest(text) for text in args.subject_digest)
    levels = tuple(parse_level(text) for text in args.verified_level)
    for flag, value in (("--verifier-id", args.verifier_id),
                        ("--resource-uri", args.resource_uri)):
        if not value:
            from sealtrail.cli._common import usage_error

            raise usage_error(f"{flag} must not be empty")
    key = None
    if args.public_key_path:
        from sealtrail._internal.keyfiles import read_bounded
        from sealtrail.crypto.keys import PublicKey
        from sealtrail.errors import KeyMalformedError

        pem = read_bounded(args.public_key_path, 64 * 1024, what="public key",
                           error=KeyMalformedError)
        key = PublicKey.from_pem(pem)
    return VSAOptions(digests, args.verifier_id, args.resource_uri, levels), key


def _verify(args: Any, options: Any, key: Any) -> Any:
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.errors import InputError
    from sealtrail.provenance.vsa import MAX_ENVELOPE_BYTES, verify_vsa_envelope

    data = read_bounded(args.attestation_path, MAX_ENVELOPE_BYTES, what="attestation",
                        error=InputError)
    if _is_bundle(data):
        return _verify_bundle(args, data, options)
    if key is None:
        from sealtrail.cli._common import usage_error

        raise usage_error("--public-key-path is required for a DSSE envelope (a Sigstore "
                          "bundle is verified keyless instead)")
    if _identity_given(args):
        from sealtrail.cli._common import usage_error

        raise usage_error("the certificate identity flags apply to a Sigstore bundle, and "
                          f"{args.attestation_path} is a DSSE envelope")
    return verify_vsa_envelope(data, key, options, key_id=args.public_key_id)


def _is_bundle(data: bytes) -> bool:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False  # reported by the envelope reader, under slsa-verifier's name
    return isinstance(parsed, dict) and "mediaType" in parsed and "verificationMaterial" in parsed


def _identity_given(args: Any) -> bool:
    return bool(args.certificate_identity or args.certificate_identity_regexp
                or args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp)


def _verify_bundle(args: Any, data: bytes, options: Any) -> Any:
    """The VSA inside a Sigstore bundle: the bundle verifies (keyless under the identity
    flags, or a managed key bundle under --public-key-path) before its statement is read."""
    from sealtrail.cli import trust_commands, verify_commands
    from sealtrail.cli._common import usage_error
    from sealtrail.errors import InputError, VerificationError
    from sealtrail.models.bundle import Bundle
    from sealtrail.models.trusted_root import TrustedRoot
    from sealtrail.provenance.errors import ErrorInvalidFormat, ErrorNoValidSignature
    from sealtrail.provenance.vsa import check_vsa_payload
    from sealtrail.verify.policy import IdentityPolicy, KeyPolicy, Policy
    from sealtrail.verify.verifier import Verifier

    policy: Policy
    if args.public_key_path:
        if _identity_given(args):
            raise usage_error("--public-key-path excludes the certificate identity flags")
        from sealtrail._internal.keyfiles import read_bounded
        from sealtrail.errors import KeyMalformedError

        policy = KeyPolicy(read_bounded(args.public_key_path, 64 * 1024, what="public key",
                                        error=KeyMalformedError))
    else:
        if not ((args.certificate_identity or args.certificate_identity_regexp)
                and (args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp)):
            raise usage_error("a bundle is verified keyless: give --certificate-identity (or "
                              "-regexp) and --certificate-oidc-issuer (or -regexp), or "
                              "--public-key-path for a managed-key bundle")
        policy = IdentityPolicy(identity=args.certificate_identity,
                                identity_regexp=args.certificate_identity_regexp,
                                issuer=args.certificate_oidc_issuer,
                                issuer_regexp=args.certificate_oidc_issuer_regexp)
    try:
        bundle = Bundle.from_json(data)
    except InputError as exc:
        raise ErrorInvalidFormat(f"the Sigstore bundle does not parse: {exc.code}: "
                                 f"{exc.diagnostics()}") from exc
    root = TrustedRoot.from_json(verify_commands._trusted_root_bytes(args))
    others = [TrustedRoot.from_json(item) for item in trust_commands.companion_roots(args) or ()]
    try:
        result = Verifier(root, other_roots=others).verify_dsse(bundle, policy)
    except VerificationError as exc:
        # SPEC: slsa-verifier verify-vsa: a signature that does not verify is
        # ErrorNoValidSignature; sealtrail's own code says which check failed.
        raise ErrorNoValidSignature(f"the bundle does not verify: {exc.code}: "
                                    f"{exc.diagnostics()}") from exc
    except InputError as exc:
        raise ErrorInvalidFormat(f"the Sigstore bundle is malformed: {exc.code}: "
                                 f"{exc.diagnostics()}") from exc
    assert result.payload is not None and result.payload_type is not None
    return check_vsa_payload(result.payload_type, result.payload, options)


# -- --vsa-out: the writer verify-artifact and verify-attestation call ---------------------------

#: Where `--vsa-out`'s policy URI comes from: a URN naming the command whose flags (or
#: policy file) were checked; the policy digest pins their exact values.
POLICY_URI_PREFIX = "urn:sealtrail:policy:"


def add_vsa_out_arguments(parser: Any) -> None:
    """``--vsa-out F`` and the flags that say how to sign it (``attest``'s, prefixed with
    ``--vsa-`` so that they never collide with the verifying command's own ``--instance``,
    ``--trusted-root`` or ``--key``)."""
    parser.add_argument("--vsa-out", metavar="F",
                        help="on success, write a signed verification summary attestation "
                             "(VSA) of this check to F: a DSSE envelope with --vsa-key, else "
                             "a Sigstore bundle signed keyless")
    parser.add_argument("--vsa-resource-uri", metavar="URI",
                        help="the VSA's resourceUri (default: the source repository the "
                             "check named: git+https://github.com/OWNER/REPO)")
    parser.add_argument("--vsa-verifier-id", metavar="ID",
                        help="the VSA's verifier.id (default pkg:pypi/sealtrail)")
    parser.add_argument("--vsa-key", metavar="KEY",
                        help="sign the VSA with this private key (`sealtrail "
                             "generate-key-pair`; passphrase from $SEALTRAIL_PASSPHRASE) "
                             "instead of keyless")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--vsa-trust-config", metavar="FILE",
                       help="keyless VSA: sign with this client trust config")
    where.add_argument("--vsa-instance-dir", metavar="DIR",
                       help="keyless VSA: sign with a local instance (its built-in issuer "
                            "mints the token when enabled and no other is found)")
    where.add_argument("--vsa-instance", metavar="NAME",
                       help="keyless VSA: sign with a packaged or added instance")
    where.add_argument("--vsa-staging", action="store_true",
                       help="keyless VSA: sign with public-good staging (default: "
                            "public-good)")
    parser.add_argument("--vsa-identity-token", metavar="TOKEN",
                        help="keyless VSA: the OIDC token (else the sources `sealtrail "
                             "attest` tries)")
    parser.add_argument("--vsa-builtin-email", metavar="EMAIL",
                        help="keyless VSA with --vsa-instance-dir: the email to certify")
    parser.add_argument("--vsa-oidc-issuer", metavar="URL",
                        help="keyless VSA: issuer of the interactive browser login")
    parser.add_argument("--vsa-rekor-version", type=int, choices=(1, 2),
                        help="keyless VSA: the Rekor version to log to")


def check_vsa_arguments(args: Any) -> None:
    """Refuse ``--vsa-*`` flags that cannot work, before any verification (exit 2)."""
    from sealtrail.cli._common import usage_error

    if not getattr(args, "vsa_out", None):
        given = [name for name in ("vsa_resource_uri", "vsa_verifier_id", "vsa_key",
                                   "vsa_trust_config", "vsa_instance_dir", "vsa_instance",
                                   "vsa_identity_token") if getattr(args, name, None)]
        if given:
            raise usage_error(f"--{given[0].replace('_', '-')} needs --vsa-out")
        return
    _resource_uri(args)
    if args.vsa_key and (args.vsa_identity_token or args.vsa_trust_config
                         or args.vsa_instance_dir or args.vsa_instance or args.vsa_staging):
        raise usage_error("--vsa-key signs with a key: it excludes the keyless --vsa- flags")
    directory = os.path.dirname(os.path.abspath(args.vsa_out))
    if not os.path.isdir(directory):
        raise usage_error(f"--vsa-out: the directory {directory} does not exist")


def _resource_uri(args: Any) -> str:
    """--vsa-resource-uri, else the source repository the command checked."""
    from sealtrail.cli._common import usage_error

    given = getattr(args, "vsa_resource_uri", None)
    if given:
        return str(given)
    source = getattr(args, "source_uri", None)
    if source:
        text = str(source)
        for prefix in ("git+", "https://", "http://"):
            text = text.removeprefix(prefix)
        return "git+https://" + text.rstrip("/")
    repo = getattr(args, "repo", None)
    if repo:
        return f"git+https://github.com/{repo}"
    owner = getattr(args, "owner", None)
    if owner:
        return f"https://github.com/{owner}"
    raise usage_error("--vsa-out needs --vsa-resource-uri (no source repository to name)")


def write_vsa(args: Any, verified_subjects: Sequence[tuple[str, Mapping[str, str] | bytes]],
              input_attestations: Sequence[str | Mapping[str, Any]],
              policy_description: Any, level: str | Sequence[str] | None, *,
              policy_uri: str | None = None, policy_sha256: str | None = None,
              clock: Callable[[], Any] | None = None) -> str | None:
    """After a passed check: write the VSA ``--vsa-out`` asks for; return its path (None
    without ``--vsa-out``).

    ``verified_subjects``: (name, digest set ``{"sha256": hex}``, or a raw SHA-256 digest);
    ``input_attestations``: provenance files (hashed here) or ResourceDescriptors;
    ``policy_description``: JSON of what was checked (its RFC 8785 SHA-256 is the policy
    digest, unless ``policy_sha256`` gives a policy file's own, ``ProvenancePolicy.digest()``);
    ``level``: the SLSA build level earned (``slsa_build_level``), None for
    ``SLSA_BUILD_LEVEL_UNEVALUATED``. Signed with ``--vsa-key`` (a DSSE envelope whose
    signature names the key id `verify-vsa` computes) or keyless (a Sigstore bundle).
    """
    if not getattr(args, "vsa_out", None):
        return None
    check_vsa_arguments(args)
    from sealtrail import __version__
    from sealtrail._internal.clock import utcnow
    from sealtrail.provenance.vsa import SEALTRAIL_VERIFIER_ID, build_vsa_statement

    subjects = [(name, {"sha256": digest.hex()} if isinstance(digest, bytes) else dict(digest))
                for name, digest in verified_subjects]
    inputs = [_descriptor(item) for item in input_attestations]
    levels = ([level] if isinstance(level, str) else list(level) if level is not None
              else ["SLSA_BUILD_LEVEL_UNEVALUATED"])
    command = getattr(args, "command", None) or "verify"
    payload = build_vsa_statement(
        subjects=subjects, resource_uri=_resource_uri(args),
        policy_uri=policy_uri or POLICY_URI_PREFIX + command,
        policy_description=policy_description, input_attestations=inputs,
        verified_levels=levels, time_verified=(clock or utcnow)(),
        verifier_id=getattr(args, "vsa_verifier_id", None) or SEALTRAIL_VERIFIER_ID,
        verifier_version={"sealtrail": __version__}, policy_sha256=policy_sha256)
    if args.vsa_key:
        data, how = _key_signed(args, payload)
    else:
        data, how = _keyless(args, payload)
    from sealtrail._internal.keyfiles import write_atomic

    write_atomic(args.vsa_out, data, mode=0o644)
    print(f"wrote VSA {args.vsa_out} ({how})", file=sys.stderr)
    return str(args.vsa_out)


def _descriptor(item: str | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(item, str):
        return dict(item)
    from sealtrail._internal.files import digest_file

    digests = digest_file(item, ("sha256",))
    return {"name": os.path.basename(item), "digest": {"sha256": digests["sha256"].hex()}}


def _key_signed(args: Any, payload: bytes) -> tuple[bytes, str]:
    """A DSSE envelope signed with the managed key; its keyid is verify-vsa's default."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from sealtrail.cli.sign_commands import _passphrase, _read_small
    from sealtrail.crypto.keys import PublicKey
    from sealtrail.provenance.vsa import INTOTO_PAYLOAD_TYPE, dsse_key_id
    from sealtrail.sign.keys import load_private_key

    key = load_private_key(_read_small(args.vsa_key, "key", 64 * 1024),
                           _passphrase(f"passphrase for {args.vsa_key}: "))
    key_id = dsse_key_id(PublicKey.from_key(key.public_key()))
    type_bytes = INTOTO_PAYLOAD_TYPE.encode()
    # SPEC: DSSE v1: the signature covers PAE(payloadType, payload); P-256 with SHA-256.
    pae = b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)
    signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    envelope = {"payloadType": INTOTO_PAYLOAD_TYPE,
                "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": key_id, "sig": base64.b64encode(signature).decode()}]}
    return (json.dumps(envelope, separators=(",", ":")) + "\n").encode(), f"key {key_id}"


def _keyless(args: Any, payload: bytes) -> tuple[bytes, str]:
    """A Sigstore bundle from the existing signer, with `attest`'s signing flags."""
    from types import SimpleNamespace

    from sealtrail.cli.sign_commands import _make_signer, _signing_context

    signing = SimpleNamespace(
        trust_config=args.vsa_trust_config, instance_dir=args.vsa_instance_dir,
        instance=args.vsa_instance, staging=args.vsa_staging,
        rekor_version=args.vsa_rekor_version, identity_token=args.vsa_identity_token,
        oidc_issuer=args.vsa_oidc_issuer, builtin_email=args.vsa_builtin_email, key=None,
        jobs=1)
    context = _signing_context(signing)
    with _make_signer(signing, context) as signer:
        result = signer.sign_statement(payload, "VSA")
        identity = signer.identity
    who = f"keyless as {identity.san}" if identity is not None else "keyless"
    return result.bundle_json(), who


# -- verify-attestation's VSA: GitHub attestations that passed ---------------------------------

_SLSA_PROVENANCE = ("https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2")


def github_attestation_level(passed: Sequence[Any]) -> str | None:
    """The best SLSA build level among one artifact's passed GitHub attestations (``
    provenance.github.AttestationResult``), counting SLSA provenance only; None when none is.

    GitHub-hosted runner and a signer workflow of another repository than the source: L3;
    GitHub-hosted in the build's own repository: L2; else L1 (``slsa_build_level``)."""
    from sealtrail.provenance.vsa import slsa_build_level

    best: str | None = None
    for item in passed:
        if item.statement.get("predicateType") not in _SLSA_PROVENANCE:
            continue
        extensions = item.result.extensions
        signer = str(extensions.get("build_signer_uri", ""))
        source = str(extensions.get("source_repository_uri", "")).rstrip("/").lower()
        signer_repo = "/".join(signer.split("/", 5)[:5]).lower()
        level = slsa_build_level(
            github_hosted=extensions.get("runner_environment") == "github-hosted",
            reusable_workflow=bool(source) and signer_repo != source)
        best = level if best is None or level > best else best
    return best


def write_attestation_vsa(args: Any, verified: Sequence[tuple[str, str, bytes, Sequence[Any]]]
                          ) -> str | None:
    """``verify-attestation --vsa-out``: ``verified`` holds, per artifact that passed, its
    subject name, digest algorithm, digest and passed attestations. The level is the lowest
    of the artifacts' best levels (UNEVALUATED if one has no SLSA provenance)."""
    if not getattr(args, "vsa_out", None) or not verified:
        return None
    levels = [github_attestation_level(passed) for _, _, _, passed in verified]
    level = None if any(item is None for item in levels) else min(
        item for item in levels if item is not None)
    flags = ("owner", "repo", "signer_repo", "signer_workflow", "cert_identity",
             "cert_identity_regex", "cert_oidc_issuer", "predicate_type",
             "deny_self_hosted_runners", "source_ref", "source_digest", "signer_digest",
             "digest_alg", "no_predicate_checks", "no_public_good")
    description = {"command": "verify-attestation",
                   **{name: getattr(args, name, None) for name in flags}}
    return write_vsa(args, [(name, {algorithm: digest.hex()})
                            for name, algorithm, digest, _ in verified],
                     [args.bundle], description, level,
                     policy_sha256=getattr(args, "policy_digest", None))
