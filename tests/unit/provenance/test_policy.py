"""The provenance policy file: strict parsing, slsa-verifier's defaults, builder matching,
the digest a VSA names, and `sealtrail policy explain`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sealtrail.cli.main import main
from sealtrail.errors import ConfigInvalidError
from sealtrail.provenance.policy import (
    DEFAULT_BUILDERS,
    DEFAULT_PREDICATE_TYPES,
    MAX_POLICY_BYTES,
    ProvenancePolicy,
    TrustedBuilder,
)

GENERIC = ("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
           "generator_generic_slsa3.yml")
FULL = b"""
version = 1
predicate-types = ["https://slsa.dev/provenance/v1"]
minimum-level = 2

[source]
uri = "github.com/org/repo"
branch = "main"
versioned-tag = "v1"
workflow-inputs = { test = "true" }

[[builder]]
id = "https://github.com/org/builders/.github/workflows/build.yml"
refs = ["refs/tags/v*", "refs/heads/main"]
level = 2

[identity]
issuer = "https://token.actions.githubusercontent.com"
identity-regexp = "^https://github.com/org/"
deny-self-hosted-runners = true
"""


def parse(text: bytes) -> ProvenancePolicy:
    return ProvenancePolicy.from_toml(text, "p.toml")


def test_a_full_policy_parses_into_what_the_flags_say() -> None:
    policy = parse(FULL)
    assert policy.predicate_types == ("https://slsa.dev/provenance/v1",)
    assert policy.minimum_level == 2
    assert (policy.source_uri, policy.source_branch, policy.source_versioned_tag) == (
        "github.com/org/repo", "main", "v1")
    assert policy.workflow_inputs == {"test": "true"}
    assert policy.builders == (TrustedBuilder(
        "https://github.com/org/builders/.github/workflows/build.yml",
        ("refs/tags/v*", "refs/heads/main"), 2),)
    assert policy.issuer == "https://token.actions.githubusercontent.com"
    assert policy.identity_regexp == "^https://github.com/org/"
    assert policy.deny_self_hosted_runners is True


def test_defaults_are_slsa_verifiers() -> None:
    policy = parse(b"version = 1\n")
    assert policy.builders == DEFAULT_BUILDERS
    assert policy.predicate_types == DEFAULT_PREDICATE_TYPES
    names = {b.id.rsplit("/", 1)[1] for b in DEFAULT_BUILDERS}
    assert names == {"generator_generic_slsa3.yml", "builder_go_slsa3.yml",
                     "builder_container-based_slsa3.yml", "delegator_generic_slsa3.yml",
                     "delegator_lowperms-generic_slsa3.yml"}
    # Trusted only at a full semantic-version tag, earning L3.
    assert policy.builder_for(GENERIC + "@refs/tags/v2.1.0") == TrustedBuilder(GENERIC)
    assert policy.builder_for(GENERIC + "@refs/tags/v2.1.0") is not None
    for ref in ("refs/tags/v2.1", "refs/tags/v2.1.0-rc.1", "refs/heads/main", "refs/tags/2.1.0"):
        assert policy.builder_for(f"{GENERIC}@{ref}") is None, ref
    assert policy.builder_for("https://github.com/evil/fork/.github/workflows/"
                              "generator_generic_slsa3.yml@refs/tags/v2.1.0") is None


def test_builder_refs_are_patterns_or_exact() -> None:
    policy = parse(FULL)
    builder = "https://github.com/org/builders/.github/workflows/build.yml"
    assert policy.builder_for(builder + "@refs/tags/v7") is not None
    assert policy.builder_for(builder + "@refs/heads/main") is not None
    assert policy.builder_for(builder + "@refs/heads/dev") is None
    assert policy.builder_for(builder) is not None  # no ref given: the id alone


@pytest.mark.parametrize("text, fragment", [
    (b"", "'version' must be 1"),
    (b"version = 2", "'version' must be 1"),
    (b"version = 1\nbuilders = []", "unknown key 'builders'"),
    (b"version = 1\n[source]\nurl = 'x'", "unknown key 'url'"),
    (b"version = 1\n[source]\ntag = 'v1'\nversioned-tag = 'v1'", "exclude each other"),
    (b"version = 1\n[source]\nuri = 3", "must be a non-empty string"),
    (b"version = 1\nminimum-level = 4", "SLSA Build level"),
    (b"version = 1\nminimum-level = true", "SLSA Build level"),
    (b"version = 1\npredicate-types = []", "must not be empty"),
    (b"version = 1\n[[builder]]\nid = 'https://x/b.yml@refs/tags/v1'", "names a ref"),
    (b"version = 1\n[[builder]]\nid = 'https://x/b.yml'\n[[builder]]\nid = 'https://x/b.yml'",
     "repeats the builder"),
    (b"version = 1\n[[builder]]\nid = 'https://x/b.yml'\nrefs = []", "must not be empty"),
    (b"version = 1\nminimum-level = 3\n[[builder]]\nid = 'https://x/b.yml'\nlevel = 2",
     "no trusted builder earns minimum-level 3"),
    (b"version = 1\n[identity]\nowner = 'o'\nrepo = 'o/r'", "exclude each other"),
    (b"version = 1\n[identity]\nrepo = 'r'", "OWNER/NAME"),
    (b"version = 1\n[identity]\nidentity-regexp = '(?<=a)b'", "identity-regexp"),
    (b"version = 1\n[identity]\ndeny-self-hosted-runners = 'yes'", "true or false"),
    (b"version = 1\nsource = 'x'", "must be a table"),
    (b"version = [1", "not valid TOML"),
    (b"\xff", "not valid TOML"),
])
def test_bad_policies_are_one_config_error(text: bytes, fragment: str) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        parse(text)
    assert fragment in info.value.message, info.value.message
    assert "p.toml" in info.value.message


def test_size_is_bounded() -> None:
    with pytest.raises(ConfigInvalidError, match="too large"):
        parse(b"#" * (MAX_POLICY_BYTES + 1))


def test_digest_is_of_the_file_or_of_canonical_json() -> None:
    assert parse(FULL).digest() == hashlib.sha256(FULL).hexdigest()
    built = ProvenancePolicy(source_uri="github.com/org/repo")
    same = ProvenancePolicy(source_uri="github.com/org/repo")
    other = ProvenancePolicy(source_uri="github.com/org/other")
    assert built.digest() == same.digest() != other.digest()


def test_explain_says_every_check_in_words() -> None:
    text = "\n".join(parse(FULL).explain())
    for fragment in ("predicate type https://slsa.dev/provenance/v1;",
                     "matches ^https://github.com/org/ (anywhere in the value",
                     "OIDC issuer is exactly https://token.actions.githubusercontent.com",
                     "GitHub-hosted runner",
                     "build.yml, at a ref matching refs/tags/v* or the ref refs/heads/main "
                     "(earns SLSA Build L2)",
                     "source repository github.com/org/repo", "on the branch main",
                     "tag of version v1", "input test = 'true'",
                     "at least SLSA Build L2."):
        assert fragment in text, fragment
    defaults = "\n".join(parse(b"version = 1").explain())
    assert "a release tag vX.Y.Z (full semantic version) (earns SLSA Build L3)" in defaults
    assert defaults.endswith(".")


def test_policy_explain_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(FULL)
    assert main(["policy", "explain", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("An artifact passes this policy when all of these hold:\n")
    assert main(["policy", "explain", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["digest"] == {"sha256": hashlib.sha256(FULL).hexdigest()}
    assert data["policy"]["source_uri"] == "github.com/org/repo"
    assert "on the branch main" in data["checks"]
    path.write_bytes(b"version = 1\n[source]\nuri = 1\n")
    assert main(["policy", "explain", str(path)]) == 2
    assert "CONFIG_INVALID" in capsys.readouterr().err
    assert main(["policy", "explain", str(tmp_path / "missing.toml")]) == 2


# -- local builders (attest-provenance --local) ------------------------------------------------

ISSUER = "https://issuer.example.com"
LOCAL = b"""
version = 1

[[builder]]
id = "urn:sealtrail:builder:local:*"
level = 1
signers = [{identity = "dev@example.com", issuer = "https://issuer.example.com"},
           {identity-regexp = "^ops-[a-z]+@example\\\\.com$", issuer = "https://other.example"}]
"""


def test_a_local_builder_names_its_signers() -> None:
    policy = parse(LOCAL)
    (builder,) = policy.builders
    assert builder.local and builder.level == 1 and not builder.allow_dirty
    assert builder.accepts_id("urn:sealtrail:builder:local:laptop")
    assert not builder.accepts_id("urn:sealtrail:builder:other:laptop")
    assert builder.accepts_signer("dev@example.com", ISSUER)
    assert not builder.accepts_signer("dev@example.com", "https://other.example")
    assert not builder.accepts_signer("eve@example.com", ISSUER)
    assert builder.accepts_signer("ops-anna@example.com", "https://other.example")
    assert not builder.accepts_signer("ops-anna@example.com", ISSUER)
    assert not builder.accepts_signer("ops-anna@exampleXcom", "https://other.example")
    # An exact id admits only itself; allow-dirty is read.
    exact = parse(b"version = 1\n[[builder]]\nid = 'urn:sealtrail:builder:local:box'\n"
                  b"level = 1\nallow-dirty = true\n"
                  b"signers = [{identity = 'a@b', issuer = 'https://i'}]").builders[0]
    assert exact.allow_dirty and exact.accepts_id("urn:sealtrail:builder:local:box")
    assert not exact.accepts_id("urn:sealtrail:builder:local:box2")
    # A GitHub workflow builder is never a local one.
    assert not TrustedBuilder(GENERIC).local
    assert not TrustedBuilder(GENERIC).accepts_id(GENERIC)


def test_default_policies_trust_no_local_builder() -> None:
    assert not any(b.local for b in parse(b"version = 1").builders)
    assert not any(b.local for b in DEFAULT_BUILDERS)


_LB = b"version = 1\n[[builder]]\nid = 'urn:sealtrail:builder:local:*'\n"
_SIGNERS = b"signers = [{identity = 'a@b', issuer = 'https://i'}]\n"


@pytest.mark.parametrize(("text", "fragment"), [
    (_LB + b"level = 1\n", "signers is required"),
    (_LB + b"level = 1\nsigners = []\n", "signers is required"),
    (_LB + _SIGNERS, "level is required"),
    (_LB + b"level = 2\n" + _SIGNERS, "at most SLSA Build L1"),
    (_LB + b"level = 1\nrefs = ['x']\n" + _SIGNERS, "unknown key 'refs'"),
    (_LB + b"level = 1\nallow-dirty = 'yes'\n" + _SIGNERS, "allow-dirty must be true or false"),
    (_LB + b"level = 1\nsigners = [{identity = 'a@b'}]\n", "issuer must be a non-empty"),
    (_LB + b"level = 1\nsigners = [{issuer = 'https://i'}]\n", "exactly one of"),
    (_LB + b"level = 1\nsigners = [{identity = 'a', identity-regexp = 'a', issuer = 'i'}]\n",
     "exactly one of"),
    (_LB + b"level = 1\nsigners = [{identity = 'a', issuer = 'i', email = 'x'}]\n",
     "unknown key 'email'"),
    (_LB + b"level = 1\nsigners = [{identity-regexp = '(?<=a)b', issuer = 'i'}]\n",
     "identity-regexp"),
    (_LB + b"level = 1\n" + _SIGNERS + b"[[builder]]\nid = 'urn:sealtrail:builder:local:*'\n"
     b"level = 1\n" + _SIGNERS, "repeats the builder"),
    (b"version = 1\n[[builder]]\nid = 'https://x/b.yml'\n" + _SIGNERS,
     "unknown key 'signers'"),
    (b"version = 1\n[[builder]]\nid = 'https://x/b.yml'\nallow-dirty = true\n",
     "unknown key 'allow-dirty'"),
    (_LB.replace(b"version = 1\n", b"version = 1\nminimum-level = 2\n") + b"level = 1\n"
     + _SIGNERS,
     "no trusted builder earns minimum-level 2"),
])
def test_bad_local_builders_are_one_config_error(text: bytes, fragment: str) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        parse(text)
    assert fragment in info.value.message, info.value.message


def test_explain_says_a_local_builder_is_not_isolated() -> None:
    text = "\n".join(parse(LOCAL).explain())
    assert ("urn:sealtrail:builder:local:*: built on a developer machine by dev@example.com "
            "(issuer https://issuer.example.com) or an identity matching "
            "^ops-[a-z]+@example\\.com$ (issuer https://other.example), earning SLSA Build L1: "
            "not an isolated build platform; a dirty working tree is refused") in text, text
    data = parse(LOCAL).to_json()["builders"][0]
    assert data == {"id": "urn:sealtrail:builder:local:*", "level": 1, "allow_dirty": False,
                    "signers": [{"issuer": ISSUER, "identity": "dev@example.com"},
                                {"issuer": "https://other.example",
                                 "identity_regexp": "^ops-[a-z]+@example\\.com$"}]}
