"""VERIFY.md: the facts come from the certificate and the environment, the commands carry
them."""

from __future__ import annotations

import shlex

from sealtrail.release.instructions import (GITHUB_ACTIONS_ISSUER, equivalent_commands,
                                            facts_of, render_instructions, sealtrail_command)

SIGNER = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
EXTENSIONS = {"source_repository_uri": "https://github.com/acme/app",
              "source_repository_ref": "refs/tags/v1.2.3", "build_signer_uri": SIGNER}


def github_facts(**overrides: object) -> object:
    arguments: dict[str, object] = {"trust_flags": (), "trusted_root_file": False,
                                    "artifacts": ["app.tar.gz", "app it.whl"],
                                    "provenance": True, "detached": False}
    arguments.update(overrides)
    return facts_of(SIGNER, GITHUB_ACTIONS_ISSUER, EXTENSIONS, {}, **arguments)  # type: ignore[arg-type]


def test_facts_from_the_certificate() -> None:
    facts = github_facts()
    assert (facts.source_uri, facts.repository, facts.tag, facts.builder_id) == (  # type: ignore[attr-defined]
        "github.com/acme/app", "acme/app", "v1.2.3",
        "https://github.com/acme/app/.github/workflows/release.yml")


def test_tag_from_the_environment_when_the_certificate_has_none() -> None:
    facts = facts_of("me@example.com", "https://issuer", {}, {"CI_COMMIT_TAG": "v2"},
                     trust_flags=(), trusted_root_file=False, artifacts=["a"],
                     provenance=False, detached=False)
    assert facts.tag == "v2" and facts.source_uri is None


def test_the_sealtrail_command_names_everything() -> None:
    argv = shlex.split(sealtrail_command(github_facts()))  # type: ignore[arg-type]
    assert argv == ["sealtrail", "release", "verify", ".", "--certificate-identity", SIGNER,
                    "--certificate-oidc-issuer", GITHUB_ACTIONS_ISSUER, "--source-uri",
                    "github.com/acme/app", "--source-tag", "v1.2.3", "--builder-id",
                    "https://github.com/acme/app/.github/workflows/release.yml"]


def test_hosted_release_uses_slsa_verifier_and_gh() -> None:
    commands = equivalent_commands(github_facts())  # type: ignore[arg-type]
    slsa = shlex.split(commands["slsa-verifier"][0])
    assert slsa[:4] == ["slsa-verifier", "verify-artifact", "app.tar.gz", "app it.whl"]
    assert shlex.split(commands["gh"][1])[:4] == ["gh", "attestation", "verify", "app it.whl"]
    assert len(commands["cosign"]) == 3  # SHA256SUMS and both artifacts


def test_self_hosted_release_names_the_trusted_root_variable() -> None:
    facts = facts_of("me@example.com", "http://127.0.0.1:1/oidc", {}, {}, trust_flags=(),
                     trusted_root_file=True, artifacts=["a"], provenance=False, detached=False)
    text = render_instructions(facts)
    assert "export TRUSTED_ROOT=" in text
    assert sealtrail_command(facts).endswith('--trusted-root "$TRUSTED_ROOT"')
    assert "slsa-verifier" not in text and "gh attestation" not in text  # no provenance


def test_detached_release_adds_cosigns_sig_and_pem_commands() -> None:
    assert "cosign (.sig/.pem)" not in equivalent_commands(github_facts())  # type: ignore[arg-type]
    commands = equivalent_commands(github_facts(detached=True))  # type: ignore[arg-type]
    argv = shlex.split(commands["cosign (.sig/.pem)"][1])
    assert argv[:8] == ["cosign", "verify-blob", "app.tar.gz", "--signature", "app.tar.gz.sig",
                        "--certificate", "app.tar.gz.pem", "--certificate-identity"]
