"""VERIFY.md for a release signed in GitLab CI: the pipeline identity, and the provenance (of
sealtrail's GitLab buildType, which slsa-verifier does not know) checked at SLSA Build L2 by
sealtrail verify-artifact / release verify with --source-uri and --source-tag (no
--builder-id: the builder is a runner, checked against the certificate's project)."""

from __future__ import annotations

from sealtrail.release.instructions import (ReleaseFacts, equivalent_commands, facts_of,
                                            render_instructions, sealtrail_command)

SIGNER = "https://gitlab.com/acme/app//.gitlab-ci.yml@refs/tags/v1.2.3"
EXTENSIONS = {"source_repository_uri": "https://gitlab.com/acme/app",
              "source_repository_ref": "refs/tags/v1.2.3", "build_signer_uri": SIGNER}


def facts(provenance: bool = True) -> ReleaseFacts:
    return facts_of(SIGNER, "https://gitlab.com", EXTENSIONS, {"CI_COMMIT_TAG": "v1.2.3"},
                    trust_flags=(), trusted_root_file=False, artifacts=["app.tar.gz", "b.bin"],
                    provenance=provenance, detached=False)


def test_gitlab_provenance_is_checked_by_verify_artifact() -> None:
    gitlab = facts()
    assert gitlab.slsa_provenance is False
    command = sealtrail_command(gitlab)
    assert "--certificate-identity " + SIGNER in command
    assert "--source-uri gitlab.com/acme/app --source-tag v1.2.3" in command
    assert "--builder-id" not in command
    commands = equivalent_commands(gitlab)
    assert "slsa-verifier" not in commands and "gh" not in commands
    assert "sealtrail verify" not in commands
    assert commands["sealtrail verify-artifact"] == [
        "sealtrail verify-artifact app.tar.gz b.bin --provenance-path multiple.intoto.jsonl "
        "--source-uri gitlab.com/acme/app --source-tag v1.2.3 --certificate-oidc-issuer "
        "https://gitlab.com"]
    assert "The provenance at SLSA Build L2" in render_instructions(gitlab)


def test_without_provenance_no_provenance_commands() -> None:
    assert "sealtrail verify-artifact" not in equivalent_commands(facts(provenance=False))
    assert "--source-uri" not in sealtrail_command(facts(provenance=False))


def test_a_github_identity_keeps_slsa_checks() -> None:
    github = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
    facts_github = facts_of(github, "https://token.actions.githubusercontent.com",
                            {**EXTENSIONS, "build_signer_uri": github}, {}, trust_flags=(),
                            trusted_root_file=False, artifacts=["a"], provenance=True,
                            detached=False)
    assert facts_github.slsa_provenance
    assert "--source-uri" in sealtrail_command(facts_github)
