"""VERIFY.md: the exact commands a user runs to verify this release (pure).

Everything in them comes from the signing certificate (identity, issuer, and for a CI
identity the repository, ref and signing workflow: Fulcio's extensions) and from how the
release was signed (which trust root, provenance or not, detached files or not). The
commands are run from the directory holding the downloaded release.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sealtrail.release.checksums import CHECKSUMS_NAME
from sealtrail.release.layout import PROVENANCE_NAME, bundle_of

__all__ = ["GITHUB_ACTIONS_ISSUER", "ReleaseFacts", "TRUSTED_ROOT_VARIABLE", "facts_of",
           "render_instructions"]

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
#: For a self-hosted instance, the commands name its trusted root through this variable:
#: the user gets the file from the instance's operator, never from the release itself.
TRUSTED_ROOT_VARIABLE = "TRUSTED_ROOT"


class ReleaseFacts(NamedTuple):
    identity: str
    issuer: str
    #: ``--instance NAME`` / ``--staging``; None with ``trusted_root_file``: the root comes
    #: from $TRUSTED_ROOT; None and False: public-good, the default.
    trust_flags: tuple[str, ...]
    trusted_root_file: bool
    artifacts: tuple[str, ...]
    provenance: bool
    detached: bool
    source_uri: str | None = None  # github.com/OWNER/REPO (slsa-verifier's form)
    repository: str | None = None  # OWNER/REPO
    tag: str | None = None  # v1.2.3 (without refs/tags/)
    builder_id: str | None = None  # the signing workflow, without @ref
    #: The provenance is GitHub-Actions-shaped (slsa-verifier's checks apply); False for a
    #: GitLab pipeline's (sealtrail's GitLab buildType: sealtrail verify-artifact checks it).
    slsa_provenance: bool = True


def _strip_scheme(uri: str) -> str:
    for prefix in ("https://", "http://"):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    return uri


def facts_of(identity: str, issuer: str, extensions: Mapping[str, str],
             env: Mapping[str, str], *, trust_flags: Sequence[str], trusted_root_file: bool,
             artifacts: Sequence[str], provenance: bool, detached: bool) -> ReleaseFacts:
    """The facts VERIFY.md needs, from the certificate's identity and extensions, falling
    back on the CI's variables (GitHub Actions, GitLab CI) for the tag."""
    repository_uri = extensions.get("source_repository_uri")
    source_uri = _strip_scheme(repository_uri).rstrip("/") if repository_uri else None
    repository = source_uri.split("/", 1)[1] if source_uri and "/" in source_uri else None
    ref = extensions.get("source_repository_ref") or env.get("GITHUB_REF") or ""
    tag = ref[len("refs/tags/"):] if ref.startswith("refs/tags/") else None
    if tag is None and env.get("CI_COMMIT_TAG"):
        tag = env["CI_COMMIT_TAG"]
    signer = extensions.get("build_signer_uri")
    builder_id = signer.split("@", 1)[0] if signer else None
    # SPEC: provenance-formats.md §3: a GitLab certificate's Build Signer URI is https:// +
    # ci_config_ref_uri, "<host>/<project>//<config>@<ref>": the "//" no GitHub workflow ref
    # has. Its provenance has sealtrail's GitLab buildType, which slsa-verifier does not know
    # and sealtrail's verify-artifact checks (no --builder-id: the builder is a runner).
    gitlab = bool(signer) and "//" in _strip_scheme(signer or "")
    return ReleaseFacts(identity, issuer, tuple(trust_flags), trusted_root_file,
                        tuple(artifacts), provenance, detached, source_uri, repository, tag,
                        builder_id, slsa_provenance=not gitlab)


def _line(*argv: str) -> str:
    return " ".join(shlex.quote(a) if not a.startswith('"$') else a for a in argv)


def sealtrail_command(facts: ReleaseFacts) -> str:
    """``sealtrail release verify`` with every expectation of this release."""
    argv = ["sealtrail", "release", "verify", ".", "--certificate-identity", facts.identity,
            "--certificate-oidc-issuer", facts.issuer]
    if facts.provenance and facts.source_uri:
        argv += ["--source-uri", facts.source_uri]
        if facts.tag:
            argv += ["--source-tag", facts.tag]
        # A GitLab pipeline's builder is a runner, not the signer: its project and server are
        # checked against the certificate (docs/provenance.md, verify-artifact, GitLab CI).
        if facts.builder_id and facts.slsa_provenance:
            argv += ["--builder-id", facts.builder_id]
    return _line(*argv, *_trust(facts, "--trusted-root"))


def _trust(facts: ReleaseFacts, flag: str) -> list[str]:
    if facts.trusted_root_file:
        return [flag, f'"${TRUSTED_ROOT_VARIABLE}"']
    return list(facts.trust_flags)


def equivalent_commands(facts: ReleaseFacts) -> dict[str, list[str]]:
    """The same checks with the tools users already have: tool -> command lines."""
    identity = ["--certificate-identity", facts.identity,
                "--certificate-oidc-issuer", facts.issuer]
    cosign_trust = _trust(facts, "--trusted-root") if facts.trusted_root_file else []
    commands: dict[str, list[str]] = {"sha256sum": [_line("sha256sum", "-c", CHECKSUMS_NAME)]}
    commands["cosign"] = [
        _line("cosign", "verify-blob", name, "--bundle", bundle_of(name), "--new-bundle-format",
              *identity, *cosign_trust)
        for name in (CHECKSUMS_NAME, *facts.artifacts)]
    if facts.detached:
        # cosign's own layout: the signature and certificate files, the log entry looked up
        # online (a .sig/.pem pair carries no inclusion proof).
        commands["cosign (.sig/.pem)"] = [
            _line("cosign", "verify-blob", name, "--signature", name + ".sig", "--certificate",
                  name + ".pem", *identity, *cosign_trust)
            for name in (CHECKSUMS_NAME, *facts.artifacts)]
    if facts.provenance and facts.source_uri and not facts.slsa_provenance:
        # sealtrail's GitLab CI buildType: slsa-verifier does not know it; sealtrail's
        # verify-artifact checks it at SLSA Build L2 (provenance/gitlab.py).
        gitlab = ["sealtrail", "verify-artifact", *facts.artifacts, "--provenance-path",
                  PROVENANCE_NAME, "--source-uri", facts.source_uri]
        if facts.tag:
            gitlab += ["--source-tag", facts.tag]
        gitlab += ["--certificate-oidc-issuer", facts.issuer, *_trust(facts, "--trusted-root")]
        commands["sealtrail verify-artifact"] = [_line(*gitlab)]
    if facts.provenance and facts.source_uri and facts.slsa_provenance:
        # slsa-verifier trusts GitHub Actions' issuer and public-good only; provenance from
        # any other instance is checked by sealtrail's verify-artifact, its flags plus these.
        hosted = facts.issuer == GITHUB_ACTIONS_ISSUER and not facts.trusted_root_file \
            and not facts.trust_flags
        slsa = ["slsa-verifier" if hosted else "sealtrail", "verify-artifact", *facts.artifacts,
                "--provenance-path", PROVENANCE_NAME, "--source-uri", facts.source_uri]
        if facts.tag:
            slsa += ["--source-tag", facts.tag]
        if facts.builder_id:
            slsa += ["--builder-id", facts.builder_id]
        if not hosted:
            slsa += ["--certificate-oidc-issuer", facts.issuer, *_trust(facts, "--trusted-root")]
        commands["slsa-verifier"] = [_line(*slsa)]
        if facts.repository and facts.issuer == GITHUB_ACTIONS_ISSUER:
            gh = ["--bundle", PROVENANCE_NAME, "--repo", facts.repository]
            if facts.builder_id and facts.builder_id.startswith("https://github.com/"):
                gh += ["--signer-workflow", facts.builder_id[len("https://github.com/"):]]
            if facts.tag:
                gh += ["--source-ref", f"refs/tags/{facts.tag}"]
            commands["gh"] = [_line("gh", "attestation", "verify", name, *gh)
                              for name in facts.artifacts]
    return commands


def render_instructions(facts: ReleaseFacts) -> str:
    """The text of VERIFY.md."""
    out = ["# Verifying this release", "",
           f"Every file of this release was signed by `{facts.identity}` (OIDC issuer "
           f"`{facts.issuer}`); `{CHECKSUMS_NAME}` lists them and is signed too"
           + (f", and `{PROVENANCE_NAME}` is their SLSA provenance" if facts.provenance else "")
           + ". Run these commands in the directory holding the downloaded files.", ""]
    if facts.trusted_root_file:
        out += ["The release was signed with a self-hosted Sigstore instance: get its "
                "`trusted_root.json` from the instance's operator (not from this release), "
                "then:", "", "```sh", f"export {TRUSTED_ROOT_VARIABLE}=/path/to/trusted_root.json",
                "```", ""]
    out += ["## With sealtrail", "",
            "One command checks every file, the checksums and the provenance:", "",
            "```sh", sealtrail_command(facts), "```", "",
            "It names any file that is missing, added, modified or signed by someone else, "
            "and exits 1 if one is.", ""]
    titles = {"sha256sum": "The checksums (coreutils)",
              "cosign": "Each signature (cosign 2.4 or later)",
              "cosign (.sig/.pem)": "Each signature from its .sig and .pem (cosign; online: "
                                    "the log entry is looked up)",
              "slsa-verifier": "The provenance (slsa-verifier; `sealtrail verify-artifact` "
                               "takes the same flags)",
              "sealtrail verify-artifact": "The provenance at SLSA Build L2 (sealtrail's "
                                           "GitLab CI buildType, which slsa-verifier does not "
                                           "know; see sealtrail's docs/provenance.md)",
              "gh": "The provenance (GitHub CLI; `sealtrail verify-attestation` takes the "
                    "same flags)"}
    out += ["## With other tools", ""]
    for tool, lines in equivalent_commands(facts).items():
        out += [f"### {titles[tool]}", "", "```sh", *lines, "```", ""]
    return "\n".join(out)
