"""``sealtrail verify``: the verifying side of the CLI.

Two inputs: a bundle per ARTIFACT (default ``ARTIFACT.sigstore.json``, else
``ARTIFACT.intoto.sigstore.json``, or ``--bundle`` for all of them), verified offline; or
cosign's detached pair (``--signature``/``--certificate``, or ``--detached`` for the
``ARTIFACT.sig``/``ARTIFACT.pem`` beside each), whose log entry is looked up online first.

Heavy modules are imported inside the functions, so the CLI starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NamedTuple

from sealtrail.cli import _runtime, trust_commands
from sealtrail.cli._common import EXIT_OK, Commands, usage_error
from sealtrail.errors import EXIT_VERIFICATION_FAILED

# cosign's flag names for the GitHub workflow claims (and the shorter spellings sealtrail
# accepted first), mapped to Fulcio extension names.
GITHUB_EXTENSION_FLAGS = {
    "cert_github_workflow_repository": "github_workflow_repository",
    "cert_github_workflow_ref": "github_workflow_ref",
    "cert_github_workflow_sha": "github_workflow_sha",
    "cert_github_workflow_trigger": "github_workflow_trigger",
    "cert_github_workflow_name": "github_workflow_name",
}
DIGEST_PREFIXES = ("sha256:", "sha384:", "sha512:")
SIGNATURE_SUFFIX, CERTIFICATE_SUFFIX = ".sig", ".pem"
BUNDLE_SUFFIX, ATTESTATION_SUFFIX = ".sigstore.json", ".intoto.sigstore.json"
MAX_DETACHED_BYTES = 1024 * 1024


def add_parser(commands: Commands) -> None:
    """Define `sealtrail verify` (fully only when it is the command being run)."""
    verify = commands.add_parser(
        "verify", help="verify artifacts against their Sigstore bundles (offline) or detached "
                       ".sig/.pem (one online log look-up)",
        description="Verify each ARTIFACT against its bundle (default ARTIFACT.sigstore.json, "
                    "else ARTIFACT.intoto.sigstore.json) and an identity policy or a public "
                    "key, offline. With --signature/--certificate (one ARTIFACT) or --detached "
                    "(ARTIFACT.sig and ARTIFACT.pem beside each ARTIFACT), the log entry is "
                    "first looked up ONLINE in the logs of the signing config, and the output "
                    "says so.")
    verify.add_argument("artifacts", nargs="*", metavar="ARTIFACT",
                        help="file to verify, or sha256:HEX (then --bundle, or --signature "
                             "and --certificate, are required); none with --bundle: verify "
                             "a DSSE bundle's payload on its own")
    verify.add_argument("--bundle", help="the bundle for every ARTIFACT (e.g. one attestation "
                                         "whose subjects are the artifacts)")
    identity = verify.add_mutually_exclusive_group()
    identity.add_argument("--certificate-identity", "--cert-identity", metavar="ID",
                          help="expected certificate identity (SAN), exact")
    identity.add_argument("--certificate-identity-regexp", metavar="RE",
                          help="expected certificate identity, as a regular expression that "
                               "matches anywhere in the value, as cosign's does: anchor it "
                               "(^...$) to pin the whole value")
    issuer = verify.add_mutually_exclusive_group()
    issuer.add_argument("--certificate-oidc-issuer", "--cert-oidc-issuer", metavar="URL",
                        help="expected OIDC issuer, exact")
    issuer.add_argument("--certificate-oidc-issuer-regexp", metavar="RE",
                        help="expected OIDC issuer, as a regular expression matching anywhere "
                             "in the value (as cosign's)")
    for flag, extension in GITHUB_EXTENSION_FLAGS.items():
        claim = flag.removeprefix("cert_").replace("_", "-")
        verify.add_argument("--certificate-" + claim, "--cert-" + claim, dest=flag,
                            metavar="VALUE", help=f"expected {extension} certificate claim")
    verify.add_argument("--key", metavar="PUB.pem", help="verify with this public key instead "
                        "of a certificate identity")
    root = verify.add_mutually_exclusive_group()
    root.add_argument("--trusted-root", metavar="FILE", help="trusted_root.json to verify against "
                      "(default: the public-good production root shipped with sealtrail)")
    root.add_argument("--staging", action="store_true",
                      help="use the public-good staging trust root (and its logs)")
    root.add_argument("--instance", metavar="NAME",
                      help="use the newest verified trust root of an instance: a packaged one "
                           "(public-good, public-good-staging, github) or one added with "
                           "`sealtrail trust add` (read offline; refresh it with `sealtrail "
                           "trust update`)")
    root.add_argument("--trust-config", metavar="FILE",
                      help="a client trust config: its trusted root, and (with --signature) "
                           "its logs")
    root.add_argument("--instance-dir", metavar="DIR",
                      help="a local instance made by `sealtrail init`: its trust config")
    verify.add_argument("--signature", metavar="F.sig",
                        help="a detached signature (base64, cosign's layout) instead of a "
                             "bundle (one ARTIFACT; default with --certificate: ARTIFACT.sig); "
                             "the log entry is looked up ONLINE in every log of the signing "
                             "config (default: public-good's)")
    verify.add_argument("--certificate", metavar="F.pem",
                        help="the detached signing certificate, PEM (one ARTIFACT; default "
                             "with --signature: ARTIFACT.pem)")
    verify.add_argument("--detached", action="store_true",
                        help="verify ARTIFACT.sig and ARTIFACT.pem beside each ARTIFACT (what "
                             "`sealtrail sign --detached` and cosign write), looked up online")
    verify.add_argument("--offline", action="store_true",
                        help="accepted for sigstore-python's command lines; changes nothing: "
                             "bundle verification never uses the network. Refused with "
                             "--signature/--detached, whose log look-up is online")
    verify.add_argument("--payload-type", metavar="TYPE",
                        help="without ARTIFACT: the DSSE payload type the bundle must carry "
                             "(e.g. application/vnd.in-toto+json)")
    verify.add_argument("--output-payload", metavar="FILE",
                        help="without ARTIFACT: write the verified DSSE payload to FILE "
                             "(- for standard output)")
    verify.add_argument("--json", action="store_true", help="print one JSON object per artifact")
    verify.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="worker processes for many artifacts (default: all cores)")


class _ArtifactError(Exception):
    """A usage or input error about one artifact (named in --json output)."""

    def __init__(self, artifact: str | None, error: Any) -> None:
        super().__init__(str(error))
        self.artifact = artifact
        self.error = error


def _read_policy_key(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(1024 * 1024)
    except OSError as exc:
        raise usage_error(f"cannot read key {path}: {exc.strerror}") from exc


def _policy_from_args(args: Any) -> Any:
    from sealtrail.verify.policy import IdentityPolicy, KeyPolicy, anchoring_warning

    identity_given = args.certificate_identity or args.certificate_identity_regexp
    issuer_given = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    extensions = {name: getattr(args, flag) for flag, name in GITHUB_EXTENSION_FLAGS.items()
                  if getattr(args, flag) is not None}
    if args.key:
        if identity_given or issuer_given or extensions:
            raise usage_error("--key cannot be combined with certificate identity flags")
        return KeyPolicy(_read_policy_key(args.key))
    if not identity_given or not issuer_given:
        raise usage_error("give --certificate-identity (or -regexp) and --certificate-oidc-issuer "
                          "(or -regexp), or --key")
    policy = IdentityPolicy(identity=args.certificate_identity,
                            identity_regexp=args.certificate_identity_regexp,
                            issuer=args.certificate_oidc_issuer,
                            issuer_regexp=args.certificate_oidc_issuer_regexp,
                            extensions=extensions)
    for pattern, flag in ((args.certificate_identity_regexp, "--certificate-identity-regexp"),
                          (args.certificate_oidc_issuer_regexp,
                           "--certificate-oidc-issuer-regexp")):
        warning = anchoring_warning(pattern, flag)
        if warning:
            print(f"sealtrail: warning: {warning}", file=sys.stderr)
    return policy


# -- trust: which root, and (detached) which logs ------------------------------------------


def _trust_config_path(args: Any) -> str | None:
    if args.trust_config:
        return str(args.trust_config)
    if args.instance_dir:
        return os.path.join(args.instance_dir, "trust", "trust_config.json")
    return None


def _read_document(path: str, what: str) -> bytes:
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.errors import InputError

    return read_bounded(path, 16 * 1024 * 1024, what=what, error=InputError)


def _trusted_root_bytes(args: Any) -> bytes:
    """The trusted_root.json the flags name (offline: files, packaged copies, the TUF cache)."""
    config_path = _trust_config_path(args)
    if config_path is not None:
        from sealtrail.errors import ConfigInvalidError

        try:
            config = json.loads(_read_document(config_path, "trust config"))
            root = config["trustedRoot"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigInvalidError(f"{config_path} is not a client trust config with a "
                                     "trustedRoot") from exc
        return json.dumps(root).encode()
    # The newest verified root (packaged or TUF cache); says which in the report.
    return trust_commands.verification_root(args).data


def _detached_trust(args: Any) -> tuple[Any, list[Any]]:
    """The trusted root and the logs to search, from the signing config the flags name:
    --trust-config / --instance-dir, --instance, --staging, else public-good's (packaged)."""
    from sealtrail.errors import UsageError
    from sealtrail.sign.context import SigningContext
    from sealtrail.sign.detached import LogRef

    if args.trusted_root:
        raise usage_error("--signature needs the logs of a signing config: give --trust-config, "
                          "--instance-dir, --instance or --staging (default: public-good), "
                          "not --trusted-root")
    config_path = _trust_config_path(args)
    if config_path is not None:
        data = _read_document(config_path, "trust config")

        def context(version: int) -> Any:
            return SigningContext.from_trust_config(data, version)
    else:
        # The newest verified documents (packaged or TUF cache); says which in the report.
        root_json, signing_json = trust_commands.signing_documents(args)

        def context(version: int) -> Any:
            return SigningContext.from_documents(root_json, signing_json, version)
    logs, trusted_root, refusals = [], None, []
    for version in (1, 2):  # a v1 entry carries its own signed time: asked first
        try:
            chosen = context(version)
        except UsageError as exc:  # no usable log of this version
            refusals.append(exc.message)
            continue
        trusted_root = chosen.trusted_root
        logs.append(LogRef(chosen.rekor_url, version))
    if trusted_root is None:
        raise usage_error("the signing config offers no log to search: " + "; ".join(refusals))
    return trusted_root, logs


# -- detached pairs ---------------------------------------------------------------------------


class _DetachedInput(NamedTuple):
    artifact: str
    signature: str
    certificate: str


def _detached_inputs(args: Any) -> list[_DetachedInput]:
    """Which .sig/.pem goes with which ARTIFACT: explicit only with one ARTIFACT, else (and by
    default) ARTIFACT.sig and ARTIFACT.pem beside each."""
    if args.bundle:
        raise usage_error("--bundle and --signature/--certificate/--detached exclude each other")
    if args.offline:
        raise usage_error("--offline and --signature/--certificate/--detached exclude each "
                          "other: a detached pair's log entry is looked up online")
    if args.key:
        raise usage_error("--signature/--detached verify a keyless certificate (--certificate); "
                          "for --key, verify a bundle")
    explicit = args.signature or args.certificate
    if explicit and len(args.artifacts) != 1:
        raise usage_error("--signature and --certificate name the files of a single ARTIFACT; "
                          "with several, use --detached (ARTIFACT.sig and ARTIFACT.pem beside "
                          "each)")
    inputs = []
    for artifact in args.artifacts:
        is_digest = artifact.startswith(DIGEST_PREFIXES) and not os.path.exists(artifact)
        if is_digest and not (args.signature and args.certificate):
            raise _ArtifactError(artifact, usage_error(
                f"{artifact}: a digest needs --signature and --certificate"))
        if is_digest and not artifact.startswith("sha256:"):
            raise _ArtifactError(artifact, usage_error(
                f"{artifact}: a detached signature covers a sha256 digest"))
        inputs.append(_DetachedInput(artifact, args.signature or artifact + SIGNATURE_SUFFIX,
                                     args.certificate or artifact + CERTIFICATE_SUFFIX))
    return inputs


def _read_small_input(path: str, what: str) -> bytes:
    from sealtrail._internal.keyfiles import read_bounded
    from sealtrail.errors import InputError

    return read_bounded(path, MAX_DETACHED_BYTES, what=what, error=InputError)


def _verify_detached(args: Any, policy: Any) -> int:
    """One online look-up per artifact (its entry, in whichever log holds it), then the same
    offline verification as a bundle's."""
    from sealtrail.sign.detached import lookup_client
    from sealtrail.verify.verifier import Verifier

    inputs = _detached_inputs(args)
    trusted_root, logs = _detached_trust(args)
    _runtime.started("verify")
    verifier = Verifier(trusted_root)
    results: list[tuple[Any, dict[str, Any]]] = []
    with lookup_client() as http:  # one client: connections kept alive across artifacts
        for item in inputs:
            results.append(_verify_one_detached(item, verifier, policy, trusted_root, logs, http))
    return _report(results, args)


def _verify_one_detached(item: _DetachedInput, verifier: Any, policy: Any, trusted_root: Any,
                         logs: list[Any], http: Any) -> tuple[Any, dict[str, Any]]:
    """One artifact's pair: its outcome, and what --json adds (files, identity found, where
    the entry was found). A failure ends this artifact only."""
    from sealtrail._internal.files import digest_file
    from sealtrail.batch import Outcome
    from sealtrail.errors import Error, NoVerifiedTimeError
    from sealtrail.models.bundle import Bundle
    from sealtrail.sign.detached import (find_detached_entry, read_detached_certificate,
                                         read_detached_signature)
    from sealtrail.verify.verifier import Artifact

    extra: dict[str, Any] = {"signature": item.signature, "certificate": item.certificate}

    def say(line: str) -> None:
        print(f"{item.artifact}: {line}", file=sys.stderr)

    try:
        signature = read_detached_signature(_read_small_input(item.signature, "signature"))
        certificate = read_detached_certificate(_read_small_input(item.certificate,
                                                                  "certificate"))
        extra.update(_identity_of(certificate))
        if item.artifact.startswith("sha256:") and not os.path.exists(item.artifact):
            digest = Artifact.from_digest(item.artifact).digests["sha256"]
        else:
            digest = digest_file(item.artifact, ("sha256",))["sha256"]
        found = find_detached_entry(digest, signature, certificate, logs, trusted_root,
                                    http=http, say=say)
        say(f"found at log index {found.log_index} of the Rekor v{found.log.version} log at "
            f"{found.log.url} (the only network step); verifying offline")
        extra["online"] = {"log": found.log.url, "rekor_version": found.log.version,
                           "log_index": found.log_index}
        bundle = Bundle.from_json(json.dumps(found.bundle))
        try:
            result = verifier.verify_artifact(Artifact({"sha256": digest}), bundle, policy)
        except NoVerifiedTimeError as exc:
            if found.log.version != 2:
                raise
            raise NoVerifiedTimeError(
                exc.message + "; the entry is in a Rekor v2 log, which records no time, and "
                "a .sig/.pem pair carries no timestamp: verify the bundle instead, or sign "
                "with `sealtrail sign --detached` (logged to Rekor v1)") from exc
    except Error as exc:
        return Outcome(item.artifact, False, exc.code, exc.diagnostics(),
                       exit_code=exc.exit_code), extra
    return Outcome(item.artifact, True, identity=result.identity, issuer=result.issuer,
                   log_index=result.log_index,
                   verified_time=result.to_json()["verified_time"]), extra


def _identity_of(certificate: Any) -> dict[str, Any]:
    """The identity and issuer a certificate names (empty when it names none usable)."""
    from sealtrail.errors import Error
    from sealtrail.models.certificate import FulcioIdentity

    try:
        found = FulcioIdentity.from_certificate(certificate)
    except (Error, ValueError):
        return {}
    return {"identity": found.san, "issuer": found.issuer}


def _bundle_facts(path: str, ok: bool) -> dict[str, Any]:
    """For --json: what a bundle says about itself. On a failure, the identity and issuer its
    certificate names (as found, not as verified); for DSSE, the payload type and, for an
    in-toto statement, its predicate type and subjects."""
    from sealtrail.batch import read_bundle
    from sealtrail.errors import Error

    if ok:  # most results: a signature bundle has nothing to add, and is not parsed again
        from sealtrail.models.bundle import MAX_BUNDLE_BYTES

        try:
            with open(path, "rb") as handle:
                if b"dsseEnvelope" not in handle.read(MAX_BUNDLE_BYTES):
                    return {}
        except OSError:
            return {}
    try:
        bundle = read_bundle(path)
    except Error:
        return {}
    facts: dict[str, Any] = {}
    if not ok and bundle.certificate is not None:
        facts.update(_identity_of(bundle.certificate))
    envelope = bundle.dsse_envelope
    if envelope is not None:
        facts["payload_type"] = envelope.payload_type
        if envelope.payload_type == "application/vnd.in-toto+json":
            try:
                statement = json.loads(envelope.payload)
                facts["predicate_type"] = statement.get("predicateType")
                facts["subjects"] = [{"name": s.get("name"), "digest": s.get("digest")}
                                     for s in statement.get("subject", [])][:64]
            except (ValueError, AttributeError, TypeError):
                pass
    return facts


def _logged(outcome: Any) -> str:
    if outcome.log_index is None:
        # A root without transparency logs (GitHub's instance): the signed timestamp is the
        # verified time, and there is no entry to name.
        return "not logged (its trusted root has no transparency log)"
    return f"logged at index {outcome.log_index}"


def _which_bundle(outcome: Any) -> str:
    """For a JSON Lines bundle file (`gh attestation download`): which line verified."""
    line = getattr(outcome, "bundle_line", None)
    return f" (bundle on line {line})" if line is not None else ""


def _report(results: list[tuple[Any, dict[str, Any]]], args: Any) -> int:
    for outcome, extra in results:
        if args.json:
            data = outcome.to_json()
            for key, value in extra.items():
                if key in ("identity", "issuer") and data.get(key) is not None:
                    continue  # a verified identity wins over what was read before checking
                data[key] = value
            print(json.dumps(trust_commands.annotate_result(args, data), sort_keys=True))
        elif outcome.ok:
            who = (f"identity {outcome.identity} (issuer {outcome.issuer})" if outcome.identity
                   else f"key {outcome.key_id[:16] if outcome.key_id else '?'}")
            print(f"OK: {outcome.artifact}: signed by {who}, {_logged(outcome)}, "
                  f"verified time {outcome.verified_time}{_which_bundle(outcome)}")
        else:
            print(f"FAILED: {outcome.artifact}: {outcome.code}: {outcome.message}"
                  f"{_which_bundle(outcome)}", file=sys.stderr)
    # The root matters to a verification that failed (exit 1), not to unreadable input: a
    # malformed bundle or file stays one line.
    trust_commands.print_root_notes(
        args, [o.code for o, _ in results if not o.ok and o.exit_code == EXIT_VERIFICATION_FAILED])
    return max((o.exit_code if not o.ok else EXIT_OK) for o, _ in results)


# -- bundles ----------------------------------------------------------------------------------


def _default_bundle(artifact: str) -> str:
    """ARTIFACT.sigstore.json (what `sign` writes), else ARTIFACT.intoto.sigstore.json (what
    `attest` writes) when only that one exists."""
    bundle = artifact + BUNDLE_SUFFIX
    if not os.path.exists(bundle) and os.path.exists(artifact + ATTESTATION_SUFFIX):
        return artifact + ATTESTATION_SUFFIX
    return bundle


def _verify_bundles(args: Any, policy: Any) -> int:
    from sealtrail.batch import Pair, verify_many

    _runtime.started("verify")  # what start-up made lives until exit (see cli/_runtime.py)
    pairs = []
    for artifact in args.artifacts:
        is_digest = artifact.startswith(DIGEST_PREFIXES) and not os.path.exists(artifact)
        if is_digest:
            if not args.bundle:
                raise _ArtifactError(artifact, usage_error(f"{artifact}: a digest needs --bundle"))
            from sealtrail.verify.verifier import Artifact

            try:
                Artifact.from_digest(artifact)  # a malformed digest is a usage error, said once
            except Exception as exc:
                raise _ArtifactError(artifact, exc) from exc
        pairs.append(Pair(artifact, args.bundle or _default_bundle(artifact)))
    root_json = _trusted_root_bytes(args)
    outcomes = verify_many(pairs, root_json, policy, workers=args.jobs or None,
                           other_roots_json=trust_commands.companion_roots(args))
    results = []
    for pair, outcome in zip(pairs, outcomes):
        extra = _bundle_facts(pair.bundle, outcome.ok) if args.json else {}
        results.append((outcome, extra))
    return _report(results, args)


def _verify_payload(args: Any, policy: Any) -> int:
    """No ARTIFACT: a DSSE bundle verified on its own (its payload names no artifact, or the
    caller wants the payload), the payload type checked and the payload written out."""
    from sealtrail.batch import verify_payload

    _runtime.started("verify")
    root_json = _trusted_root_bytes(args)
    result = verify_payload(args.bundle, root_json, policy, payload_type=args.payload_type,
                            other_roots_json=trust_commands.companion_roots(args))
    outcome = result.outcome
    if outcome.ok and args.output_payload:
        assert result.payload is not None
        if args.output_payload == "-":
            sys.stdout.buffer.write(result.payload)
            sys.stdout.flush()
        else:
            from sealtrail._internal.keyfiles import write_atomic

            write_atomic(args.output_payload, result.payload, mode=0o644)
    if args.json:
        extra: dict[str, Any] = {"payload_type": result.payload_type}
        if outcome.ok and result.payload is not None:
            import base64

            extra["payload"] = base64.b64encode(result.payload).decode()
        return _report([(outcome, extra if outcome.ok else _bundle_facts(args.bundle, False))],
                       args)
    if outcome.ok:
        who = (f"identity {outcome.identity} (issuer {outcome.issuer})" if outcome.identity
               else f"key {outcome.key_id[:16] if outcome.key_id else '?'}")
        size = len(result.payload or b"")
        where = (f"written to {args.output_payload}" if args.output_payload not in (None, "-")
                 else "on standard output" if args.output_payload == "-"
                 else "not written (--output-payload FILE, or - for standard output)")
        # With the payload on standard output, the verdict goes to standard error.
        stream = sys.stderr if args.output_payload == "-" else sys.stdout
        print(f"OK: {outcome.artifact}: DSSE payload of type {result.payload_type} ({size} "
              f"bytes, {where}) signed by {who}, {_logged(outcome)}, verified time "
              f"{outcome.verified_time}{_which_bundle(outcome)}", file=stream)
        return EXIT_OK
    return _report([(outcome, {})], args)


def verify(args: Any) -> int:
    from sealtrail.errors import Error

    try:
        policy = _policy_from_args(args)
        if not args.artifacts:
            if not args.bundle or args.signature or args.certificate or args.detached:
                raise usage_error("give ARTIFACT..., or --bundle B alone to verify a DSSE "
                                  "bundle's payload without an artifact")
            return _verify_payload(args, policy)
        if args.payload_type or args.output_payload:
            raise usage_error("--payload-type and --output-payload verify a DSSE bundle "
                              "without ARTIFACT (give --bundle only)")
        if args.signature or args.certificate or args.detached:
            return _verify_detached(args, policy)
        return _verify_bundles(args, policy)
    except (_ArtifactError, Error) as caught:
        if isinstance(caught, _ArtifactError):
            artifact, error = caught.artifact, caught.error
        else:
            artifact = args.artifacts[0] if len(args.artifacts) == 1 else None
            error = caught
        if not isinstance(error, Error):
            raise
        if args.json:
            print(json.dumps({"ok": False, "artifact": artifact, **error.to_json()},
                             sort_keys=True))
        print(f"sealtrail: error: {error.code}: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
