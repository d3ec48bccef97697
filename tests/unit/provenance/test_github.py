"""sealtrail.provenance.github: gh attestation verify's checks on real GitHub attestations
(tests/vectors/github/README.md) and on mutations of them."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import (
    BundleMalformedError,
    Error,
    ExtensionMismatchError,
    IdentityMismatchError,
    IssuerMismatchError,
    SignatureInvalidError,
    SubjectMismatchError,
    UsageError,
    VerificationError,
)
from sealtrail.models.bundle import Bundle
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.models.intoto import Statement
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.provenance import github
from sealtrail.provenance.errors import (
    ErrorInvalidBuildType,
    ErrorInvalidDssePayload,
    ErrorMismatchBuilderID,
    ErrorMismatchSource,
)
from sealtrail.provenance.github import Criteria, Roots, criteria_from_flags, verify_attestations
from sealtrail.trustroot import read_trusted_root_bytes
from sealtrail.verify.verifier import Artifact

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
ECOSYSTEM = VECTORS / "ecosystem" / "pypi-attestations"
SLSA_BUNDLE = VECTORS / "github" / "pypi_attestations-0.0.19.tar.gz.slsa.sigstore.json"
SLSA_ARTIFACT = ECOSYSTEM / "pypi_attestations-0.0.19.tar.gz"
PUBLISH_BUNDLE = ECOSYSTEM / "pypi_attestation_models-0.0.4a2.tar.gz.sigstore"
PUBLISH_ARTIFACT = ECOSYSTEM / "pypi_attestation_models-0.0.4a2.tar.gz"
PUBLISH_TYPE = "https://docs.pypi.org/attestations/publish/v1"
REPO = "trailofbits/pypi-attestations"
COMMIT = "08802efe1f8e5fec4ad842d6b8ce97656092ee72"
WORKFLOW = f"{REPO}/.github/workflows/release.yml"


def _root(instance: str) -> TrustedRoot:
    return TrustedRoot.from_json(read_trusted_root_bytes(instance=instance))


PUBLIC_GOOD = _root("public-good")
GITHUB_ROOT = TrustedRoot.from_json(
    (Path(github.__file__).parents[1] / "data" / "github" / "production"
     / "trusted_root.json").read_bytes())
ROOTS = Roots(public_good=PUBLIC_GOOD, github=GITHUB_ROOT)


def slsa_json() -> dict[str, Any]:
    return json.loads(SLSA_BUNDLE.read_text())


def artifact(path: Path = SLSA_ARTIFACT, algorithm: str = "sha256") -> Artifact:
    return Artifact.from_bytes(path.read_bytes(), (algorithm,))


def verify(bundles: list[dict[str, Any]] | None = None, roots: Roots = ROOTS,
           target: Artifact | None = None, **flags: Any) -> list[github.AttestationResult]:
    flags.setdefault("owner", None if "repo" in flags else "trailofbits")
    criteria = criteria_from_flags(**flags)
    parsed = [Bundle.from_dict(b) for b in (bundles if bundles is not None else [slsa_json()])]
    return verify_attestations(target or artifact(), parsed, criteria, roots)


def failure(**kwargs: Any) -> Error:
    with pytest.raises(Error) as caught:
        verify(**kwargs)
    return caught.value


# -- real attestations pass under matching flags -------------------------------------------

@pytest.mark.parametrize("flags", [
    {},
    {"owner": "TrailOfBits"},  # gh compares case-insensitively
    {"repo": REPO},
    {"repo": REPO.upper()},
    {"signer_repo": REPO},
    {"signer_workflow": WORKFLOW},
    {"signer_workflow": f"github.com/{WORKFLOW}"},
    {"cert_identity": f"https://github.com/{WORKFLOW}@refs/tags/v0.0.19"},
    {"cert_identity_regex": "pypi-attestations/.github/workflows/release"},  # anywhere
    {"source_ref": "refs/tags/v0.0.19", "source_digest": COMMIT.upper(),
     "signer_digest": COMMIT, "deny_self_hosted_runners": True},
])
def test_real_slsa_attestation_passes(flags: dict[str, Any]) -> None:
    (result,) = verify(**flags)
    assert result.issuer_organization == "sigstore.dev" and result.root is PUBLIC_GOOD
    assert result.statement["predicate"]["buildDefinition"]["buildType"] == \
        github.ACTIONS_BUILD_TYPE


def test_real_publish_attestation_passes_with_its_predicate_type() -> None:
    bundle = json.loads(PUBLISH_BUNDLE.read_text())
    (result,) = verify([bundle], target=artifact(PUBLISH_ARTIFACT),
                       predicate_type=PUBLISH_TYPE)
    assert result.statement["predicateType"] == PUBLISH_TYPE
    # The default predicate type (SLSA v1) filters it out, as gh does.
    with pytest.raises(SubjectMismatchError, match="^no matching predicate found"):
        verify([bundle], target=artifact(PUBLISH_ARTIFACT))


# -- each mismatching flag fails with gh's message -----------------------------------------

@pytest.mark.parametrize("flags, kind, message", [
    ({"owner": "sigstore", "cert_identity_regex": "."}, ExtensionMismatchError,
     "expected SourceRepositoryOwnerURI to be https://github.com/sigstore, got "
     "https://github.com/trailofbits"),
    ({"repo": "trailofbits/other", "signer_repo": REPO}, ExtensionMismatchError,
     "expected SourceRepositoryURI to be https://github.com/trailofbits/other, got "
     f"https://github.com/{REPO}"),
    ({"cert_oidc_issuer": "https://issuer.example"}, IssuerMismatchError,
     "expected Issuer to be https://issuer.example, got "
     "https://token.actions.githubusercontent.com"),
    # gh's hint when the issuer found extends the expected one by a path (an enterprise's
    # issuer, https://token.actions.githubusercontent.com/<slug>); the real issuer extends
    # "https:/" so.
    ({"cert_oidc_issuer": "https:/"}, IssuerMismatchError, None),
    ({"signer_digest": "0" * 40}, ExtensionMismatchError,
     f"expected BuildSignerDigest to be {'0' * 40}, got {COMMIT}"),
    ({"source_digest": "1" * 40}, ExtensionMismatchError,
     f"expected SourceRepositoryDigest to be {'1' * 40}, got {COMMIT}"),
    ({"source_ref": "refs/heads/main"}, ExtensionMismatchError,
     "expected SourceRepositoryRef to be refs/heads/main, got refs/tags/v0.0.19"),
])
def test_extension_mismatch_messages(flags: dict[str, Any], kind: type[Error],
                                     message: str | None) -> None:
    error = failure(**flags)
    assert type(error) is kind
    if message is not None:
        assert error.message == message
    else:
        assert error.message.endswith("-- if you have a custom OIDC issuer policy for your "
                                      "enterprise, use the --cert-oidc-issuer flag with your "
                                      "expected issuer")


def test_enterprise_hint_only_when_the_issuer_extends_the_expected_one() -> None:
    assert "custom OIDC issuer" not in failure(cert_oidc_issuer="https://issuer.example").message


@pytest.mark.parametrize("flags, cause", [
    ({"repo": "trailofbits/other"}, IdentityMismatchError),  # the SAN pattern names the repo
    ({"owner": "sigstore"}, IdentityMismatchError),
    ({"signer_workflow": f"{REPO}/.github/workflows/other.yml"}, IdentityMismatchError),
    ({"signer_repo": "trailofbits/other"}, IdentityMismatchError),
    ({"cert_identity": f"https://github.com/{WORKFLOW}"}, IdentityMismatchError),
    ({"target": Artifact.from_bytes(b"another artifact", ("sha256",))}, SubjectMismatchError),
    ({"target": Artifact.from_bytes(SLSA_ARTIFACT.read_bytes(), ("sha512",))},
     SubjectMismatchError),  # the subject's digest is sha256 only
])
def test_sigstore_stage_fails_as_gh_reports_it(flags: dict[str, Any],
                                               cause: type[Error]) -> None:
    error = failure(**flags)
    assert error.message == 'verifying with issuer "sigstore.dev"'
    assert isinstance(error.__cause__, cause) and type(error) is cause


def test_the_runner_environment_is_checked_in_the_sigstore_stage() -> None:
    # The real certificate says github-hosted, so the criteria here demand another value to
    # show that the check is made and reported as gh reports it (a certificate from a
    # self-hosted runner is made on a local instance in the integration test).
    criteria = criteria_from_flags(owner="trailofbits", deny_self_hosted_runners=True)
    other = Criteria(**{**criteria.__dict__, "runner_environment": "self-hosted"})
    with pytest.raises(VerificationError, match='^verifying with issuer "sigstore.dev"$'):
        verify_attestations(artifact(), [Bundle.from_dict(slsa_json())], other, ROOTS)
    assert criteria.identity_policy().extensions == {"runner_environment": "github-hosted"}
    assert criteria_from_flags(owner="o").identity_policy().extensions == {}


def test_predicate_type_filter() -> None:
    error = failure(predicate_type="https://slsa.dev/provenance/v0.2")
    assert isinstance(error, SubjectMismatchError)
    assert error.message.startswith("no matching predicate found")
    # A payload that is not an in-toto statement is skipped, not an error.
    bundle = slsa_json()
    bundle["dsseEnvelope"]["payloadType"] = "application/json"
    assert failure(bundles=[bundle]).message.startswith("no matching predicate found")


def test_bundles_before_v0_2_are_refused() -> None:
    bundle = slsa_json()
    material = bundle["verificationMaterial"]
    material["x509CertificateChain"] = {"certificates": [material.pop("certificate")]}
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    error = failure(bundles=[bundle])
    assert error.message == ("unsupported bundle version: "
                             "application/vnd.dev.sigstore.bundle+json;version=0.1")
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2"
    assert verify(bundles=[bundle])  # the same material as v0.2 passes


def test_no_public_good() -> None:
    error = failure(roots=ROOTS._replace(no_public_good=True))
    assert error.message == ("detected public good instance but requested verification "
                             "without public good instance")


def test_unknown_issuer_organisation() -> None:
    error = failure(roots=Roots(github=GITHUB_ROOT))  # public-good not trusted
    assert error.message == "leaf certificate issuer is not recognized"


def test_custom_trusted_roots_json_lines() -> None:
    public = read_trusted_root_bytes(instance="public-good")
    compact = json.dumps(json.loads(public), separators=(",", ":")).encode()
    github_line = json.dumps(json.loads(GITHUB_ROOT_BYTES), separators=(",", ":")).encode()
    roots = github.parse_custom_roots(github_line + b"\n" + compact + b"\n")
    assert len(roots) == 2
    (result,) = verify(roots=Roots(custom=roots))
    assert result.root is roots[1]
    # The last line without its newline is ignored, as gh's ReadBytes loop does.
    assert len(github.parse_custom_roots(github_line + b"\n" + compact)) == 1
    error = failure(roots=Roots(custom=github.parse_custom_roots(github_line + b"\n" + compact)))
    assert error.message == "unable to use provided trusted roots"
    # --no-public-good applies to a custom root of public-good too.
    error = failure(roots=Roots(custom=roots, no_public_good=True))
    assert error.message.startswith("detected public good instance")
    with pytest.raises(Error, match="custom trusted root, line 1"):
        github.parse_custom_roots(b"{not json}\n")


GITHUB_ROOT_BYTES = (Path(github.__file__).parents[1] / "data" / "github" / "production"
                     / "trusted_root.json").read_bytes()


def _tampered(bundle: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(bundle)
    sig = bytearray(base64.b64decode(bad["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    bad["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return bad


def test_one_survivor_passes_whatever_its_position() -> None:
    good, bad = slsa_json(), _tampered(slsa_json())
    assert [r.bundle_index for r in verify(bundles=[bad, good])] == [1]
    assert [r.bundle_index for r in verify(bundles=[good, bad])] == [0]
    error = failure(bundles=[bad])
    assert error.message == 'verifying with issuer "sigstore.dev"'
    assert isinstance(error.__cause__, (SignatureInvalidError, Error))


def test_extension_error_wins_over_a_sigstore_error_in_either_order() -> None:
    # gh runs the Sigstore checks on every bundle first, then the extension checks on the
    # survivors: a survivor's extension error is the last error, whatever the order.
    good, bad = slsa_json(), _tampered(slsa_json())
    for order in ([bad, good], [good, bad]):
        error = failure(bundles=order, source_ref="refs/heads/main")
        assert error.message.startswith("expected SourceRepositoryRef")


def test_flags_gh_refuses() -> None:
    with pytest.raises(UsageError):
        criteria_from_flags()
    with pytest.raises(UsageError):
        criteria_from_flags(owner="o", repo="o/r")
    with pytest.raises(UsageError):
        criteria_from_flags(repo="no-slash")
    with pytest.raises(UsageError):
        criteria_from_flags(owner="o", signer_repo="o/r", signer_workflow="o/r/w.yml")
    with pytest.raises(UsageError, match="RE2"):
        criteria_from_flags(owner="o", cert_identity_regex="(?=x)")


@pytest.mark.parametrize("flags, san, pattern", [
    ({"owner": "o"}, None, "(?i)^https://github.com/o/"),
    ({"repo": "o/r"}, None, "(?i)^https://github.com/o/r/"),
    ({"owner": "o", "signer_repo": "s/t"}, None, "(?i)^https://github.com/s/t/"),
    ({"owner": "o", "signer_workflow": "o/r/.github/workflows/w.yml"}, None,
     "^https://github.com/o/r/.github/workflows/w.yml"),
    ({"owner": "o", "signer_workflow": "ghe.example.com/o/r/w.yml"}, None,
     "^https://ghe.example.com/o/r/w.yml"),
    ({"owner": "o", "cert_identity": "https://x/y"}, "https://x/y", None),
    ({"owner": "o", "cert_identity_regex": "y$"}, None, "y$"),
])
def test_san_pattern_construction(flags: dict[str, Any], san: str | None,
                                  pattern: str | None) -> None:
    criteria = criteria_from_flags(**flags)
    assert (criteria.san, criteria.san_regex) == (san, pattern)
    owner = flags.get("owner") or flags["repo"].split("/")[0]
    assert criteria.owner_uri == f"https://github.com/{owner}"


# -- beyond gh: the predicate agrees with the certificate ----------------------------------

def _statement_and_extensions() -> tuple[dict[str, Any], dict[str, str]]:
    bundle = Bundle.from_dict(slsa_json())
    assert bundle.dsse_envelope is not None and bundle.certificate is not None
    statement = json.loads(bundle.dsse_envelope.payload)
    return statement, dict(FulcioIdentity.from_certificate(bundle.certificate).extensions)


def as_statement(data: dict[str, Any]) -> Statement:
    return Statement.from_payload(json.dumps(data).encode())


def test_real_predicate_agrees_with_its_certificate() -> None:
    statement, extensions = _statement_and_extensions()
    github.check_predicate(as_statement(statement), extensions)


@pytest.mark.parametrize("path, value, kind", [
    (("buildDefinition", "buildType"), "https://example.com/other", ErrorInvalidBuildType),
    (("runDetails", "builder", "id"),
     "https://github.com/trailofbits/pypi-attestations/.github/workflows/evil.yml@refs/tags/v0.0.19",
     ErrorMismatchBuilderID),
    (("buildDefinition", "resolvedDependencies"),
     [{"uri": "git+https://github.com/trailofbits/pypi-attestations@refs/tags/v0.0.19",
       "digest": {"gitCommit": "f" * 40}}], ErrorMismatchSource),
    (("buildDefinition", "resolvedDependencies"), [], ErrorInvalidDssePayload),
    (("buildDefinition", "externalParameters", "workflow", "path"),
     ".github/workflows/other.yml", ErrorMismatchSource),
    (("buildDefinition", "externalParameters", "workflow", "ref"), "refs/heads/main",
     ErrorMismatchSource),
    (("buildDefinition", "externalParameters", "workflow"), None, ErrorInvalidDssePayload),
])
def test_predicate_contradicting_its_certificate(path: tuple[str, ...], value: Any,
                                                 kind: type[Error]) -> None:
    statement, extensions = _statement_and_extensions()
    node = statement["predicate"]
    for name in path[:-1]:
        node = node[name]
    node[path[-1]] = value
    with pytest.raises(kind):
        github.check_predicate(as_statement(statement), extensions)


def test_runner_build_type_checks_the_runner() -> None:
    statement, extensions = _statement_and_extensions()
    statement["predicate"]["buildDefinition"]["buildType"] = github.RUNNER_BUILD_TYPE
    statement["predicate"]["runDetails"]["builder"]["id"] = \
        "https://github.com/actions/runner/github-hosted"
    github.check_predicate(as_statement(statement), extensions)
    statement["predicate"]["runDetails"]["builder"]["id"] = \
        "https://github.com/actions/runner/self-hosted"
    with pytest.raises(ErrorMismatchBuilderID):
        github.check_predicate(as_statement(statement), extensions)


def test_slsa_github_generator_v1_provenance_passes_the_predicate_checks() -> None:
    # The generic/Go/container builders name the reusable workflow that signs; delegators
    # (BYOB) name the tool's workflow, which gh has no flag to expect: only the commit.
    from sealtrail.provenance.intoto_predicates import BUILD_TYPE_DELEGATOR, BUILD_TYPE_GENERIC

    statement, extensions = _statement_and_extensions()
    predicate = statement["predicate"]
    predicate["buildDefinition"]["buildType"] = BUILD_TYPE_GENERIC
    predicate["buildDefinition"]["externalParameters"] = {"inputs": {}}  # no workflow object
    predicate["runDetails"]["builder"]["id"] = extensions["build_signer_uri"]
    github.check_predicate(as_statement(statement), extensions)
    predicate["runDetails"]["builder"]["id"] = extensions["build_signer_uri"] + "x"
    with pytest.raises(ErrorMismatchBuilderID):
        github.check_predicate(as_statement(statement), extensions)

    predicate["buildDefinition"]["buildType"] = BUILD_TYPE_DELEGATOR
    predicate["runDetails"]["builder"]["id"] = "https://github.com/org/tool/.github/workflows/t.yml"
    github.check_predicate(as_statement(statement), extensions)
    predicate["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] = "f" * 40
    with pytest.raises(ErrorMismatchSource):
        github.check_predicate(as_statement(statement), extensions)


def test_other_predicate_types_are_not_checked() -> None:
    github.check_predicate(as_statement({"_type": "https://in-toto.io/Statement/v1",
                                         "subject": [], "predicateType": PUBLISH_TYPE,
                                         "predicate": {}}), {})


# -- gh's JSON shape ------------------------------------------------------------------------

def test_result_json_shape() -> None:
    criteria = criteria_from_flags(owner="trailofbits")
    (item,) = verify_attestations(artifact(), [Bundle.from_dict(slsa_json())], criteria, ROOTS)
    out = github.result_json(item, slsa_json(), criteria)
    assert out["attestation"] == {"bundle": slsa_json()}
    result = out["verificationResult"]
    assert result["statement"]["predicateType"] == "https://slsa.dev/provenance/v1"
    certificate = result["signature"]["certificate"]
    assert certificate["sourceRepositoryOwnerURI"] == "https://github.com/trailofbits"
    assert certificate["buildSignerDigest"] == COMMIT
    assert certificate["certificateIssuer"] == "CN=sigstore-intermediate,O=sigstore.dev"
    assert result["verifiedTimestamps"] == [{"type": "Tlog", "uri": "https://rekor.sigstore.dev",
                                             "timestamp": "2024-12-04T23:13:46Z"}]
    assert result["verifiedIdentity"]["subjectAlternativeName"]["regexp"] == \
        "(?i)^https://github.com/trailofbits/"


def test_truncated_bundle_is_malformed() -> None:
    with pytest.raises(BundleMalformedError):
        Bundle.from_json(SLSA_BUNDLE.read_bytes()[:500])


def _with_leaf_issued_by(*organizations: str) -> dict[str, Any]:
    """The real bundle with its leaf replaced by one whose issuer names ``organizations``."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
                       + [x509.NameAttribute(NameOID.COMMON_NAME, "Fulcio Intermediate l2")])
    now = datetime.now(timezone.utc)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(minutes=9))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"https://github.com/{WORKFLOW}@refs/heads/main")]),
                critical=True)
            .sign(key, hashes.SHA256()))
    bundle = slsa_json()
    bundle["verificationMaterial"]["certificate"]["rawBytes"] = \
        base64.b64encode(leaf.public_bytes(Encoding.DER)).decode()
    return bundle


def test_the_leaf_issuer_organisation_picks_the_verifier() -> None:
    # GitHub, Inc. goes to GitHub's root: this made-up leaf then fails there, under gh's words.
    error = failure(bundles=[_with_leaf_issued_by("GitHub, Inc.")])
    assert error.message == 'verifying with issuer "GitHub, Inc."'
    assert failure(bundles=[_with_leaf_issued_by("GitHub, Inc.")],
                   roots=Roots(public_good=PUBLIC_GOOD)).message == \
        "leaf certificate issuer is not recognized"
    assert failure(bundles=[_with_leaf_issued_by("Example CA")]).message == \
        "leaf certificate issuer is not recognized"
    assert failure(bundles=[_with_leaf_issued_by("a", "b")]).message == \
        "expected the leaf certificate issuer to only have one organization"
