"""Every check of the SLSA sample (tests/vectors/slsa/slsa-sample/*/case.json) through the
CLI, offline, with the packaged public-good root: PASS, or FAILED with the named error.

Plus the real GitHub artifact attestation of pypi-attestations 0.0.19 (SLSA v1, buildType
``https://actions.github.io/buildtypes/workflow/v1``), and a bare DSSE envelope refused with
ErrorRekorSearch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sealtrail.cli.main import main

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SAMPLE = VECTORS / "slsa" / "slsa-sample"
SHARED_BINARY = SAMPLE / "binary-linux-amd64"
GITHUB_ATTESTATION = VECTORS / "github" / "pypi_attestations-0.0.19.tar.gz.slsa.sigstore.json"
PYPI_SDIST = VECTORS / "ecosystem" / "pypi-attestations" / "pypi_attestations-0.0.19.tar.gz"
SEALTRAIL = str(Path(sys.executable).parent / "sealtrail")


def _cases() -> list[Any]:
    params = []
    for case_file in sorted(SAMPLE.glob("*/case.json")):
        case = json.loads(case_file.read_text())
        for index, check in enumerate(case["checks"]):
            params.append(pytest.param(case_file.parent, case, check,
                                       id=f"{case['name']}[{index}]"))
    return params


CASES = _cases()


def test_the_sample_is_all_there() -> None:
    # 3 cases, 5 + 19 + 10 checks: a missing case.json would silently shrink the table.
    assert len(CASES) == 34
    assert hashlib.sha256(SHARED_BINARY.read_bytes()).hexdigest() == \
        "376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa"


def _flags(flags: dict[str, str]) -> list[str]:
    words = []
    for flag, value in flags.items():
        words += [flag, value]
    return words


def _artifact(case_dir: Path, case: dict[str, Any], check: dict[str, Any]) -> Path:
    name = check.get("artifact_override", case["artifact"])
    path = case_dir / name
    if path.exists():
        return path
    # The three identical upstream binaries are stored once (README).
    assert name == case["artifact"]
    assert case["artifact_sha256"] == hashlib.sha256(SHARED_BINARY.read_bytes()).hexdigest()
    return SHARED_BINARY


@pytest.mark.parametrize(("case_dir", "case", "check"), CASES)
def test_case(case_dir: Path, case: dict[str, Any], check: dict[str, Any],
              capsys: pytest.CaptureFixture[str]) -> None:
    provenance = case_dir / check.get("provenance", case.get("provenance", ""))
    flags = check.get("flags", case.get("base_flags"))
    code = main(["verify-artifact", str(_artifact(case_dir, case, check)), "--provenance-path",
                 str(provenance), *_flags(flags)])
    err = capsys.readouterr().err
    if check["expect"] == "PASS":
        assert code == 0, err
        assert "PASSED: SLSA verification passed" in err
        assert "FAILED" not in err
        if "verified_builder_id" in check:
            assert f'Verified build using builder "{check["verified_builder_id"]}" at commit ' \
                   f"{case.get('provenance_facts', {}).get('fulcio_ext', {}).get('1.3.6.1.4.1.57264.1.13', '')}" \
                   in err
    else:
        # The error field names slsa-verifier's error first, sometimes with a comment.
        name = re.search(r"Error[A-Za-z]+", check["error"])
        assert name is not None, check["error"]
        assert code == 1, err
        assert f"FAILED: SLSA verification failed: {name.group(0)}: " in err, err
        assert "PASSED" not in err and "Traceback" not in err


def test_many_artifacts_share_one_provenance(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    case_dir = SAMPLE / "gha_generic_v2.1.0_push-v14"
    copies = []
    for i in range(3):
        copy = tmp_path / f"copy-{i}"
        copy.write_bytes(SHARED_BINARY.read_bytes())
        copies.append(str(copy))
    flags = ["--provenance-path", str(case_dir / "binary-linux-amd64-push-v14.intoto.jsonl"),
             "--source-uri", "github.com/slsa-framework/example-package"]
    assert main(["verify-artifact", *copies, *flags, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err.count("Verified build using builder") == 3
    result = json.loads(out)
    assert result["ok"] is True and result["slsa_build_level"] == 3
    assert [a["artifact"] for a in result["artifacts"]] == copies
    assert result["commit"] == "4d329c75e7ec1725f7c9ce917a8799d408d06be3"
    assert result["trigger"] == "push" and result["ref"] == "refs/tags/v14"
    # One artifact that is not a subject fails the call.
    other = SAMPLE / "derived_tampered_gha_generic_v2.1.0_push-v14" / "other-artifact.txt"
    assert main(["verify-artifact", *copies, str(other), *flags]) == 1
    assert "FAILED: SLSA verification failed: ErrorMismatchHash: " in capsys.readouterr().err


def test_print_provenance_prints_the_verified_statement(capsys: pytest.CaptureFixture[str]) -> None:
    case_dir = SAMPLE / "gha_generic_v2.1.0_workflow_dispatch"
    assert main(["verify-artifact", str(SHARED_BINARY), "--provenance-path",
                 str(case_dir / "binary-linux-amd64-workflow_dispatch.intoto.jsonl"),
                 "--source-uri", "github.com/slsa-framework/example-package",
                 "--print-provenance"]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["predicate"]["invocation"]["environment"]["github_event_name"] == \
        "workflow_dispatch"


def test_real_github_artifact_attestation(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["verify-artifact", str(PYPI_SDIST), "--provenance-path", str(GITHUB_ATTESTATION),
            "--source-uri", "github.com/trailofbits/pypi-attestations"]
    assert main([*base, "--source-tag", "v0.0.19", "--json"]) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    workflow = "https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml"
    assert result["builder_id"] == workflow + "@refs/tags/v0.0.19"
    assert result["commit"] == "08802efe1f8e5fec4ad842d6b8ce97656092ee72"
    assert result["build_type"] == "https://actions.github.io/buildtypes/workflow/v1"
    # The repository's own workflow on GitHub's hosted runners: SLSA Build L2.
    assert result["slsa_build_level"] == 2
    for flags, error in (
            (["--builder-id", workflow], None),
            (["--builder-id", workflow + "@v0.0.18"], "ErrorUntrustedReusableWorkflow"),
            (["--source-versioned-tag", "v0.0"], None),
            (["--source-versioned-tag", "v0.1"], "ErrorMismatchVersionedTag"),
            (["--source-tag", "v0.0.18"], "ErrorMismatchTag"),
            # A tag build of a GitHub attestation records no branch (no event payload).
            (["--source-branch", "main"], "ErrorInvalidRef")):
        code = main([*base, *flags])
        err = capsys.readouterr().err
        if error is None:
            assert code == 0, err
        else:
            assert code == 1 and f"FAILED: SLSA verification failed: {error}: " in err, err
    other = ["verify-artifact", str(PYPI_SDIST), "--provenance-path", str(GITHUB_ATTESTATION),
             "--source-uri", "github.com/trailofbits/other"]
    assert main(other) == 1
    assert "ErrorMismatchSource" in capsys.readouterr().err


def test_a_bare_dsse_envelope_needs_the_bundle(tmp_path: Path) -> None:
    case_dir = SAMPLE / "gha_generic_v2.1.0_push-v14"
    bundle = json.loads((case_dir / "binary-linux-amd64-push-v14.intoto.jsonl").read_text())
    envelope = bundle["dsseEnvelope"]
    # slsa-github-generator before v2.1.0 wrote the envelope with the certificate beside it.
    envelope["signatures"][0]["cert"] = base64.b64encode(b"a certificate").decode()
    bare = tmp_path / "old.intoto.jsonl"
    bare.write_text(json.dumps(envelope) + "\n")
    done = subprocess.run([SEALTRAIL, "verify-artifact", str(SHARED_BINARY), "--provenance-path",
                           str(bare), "--source-uri", "github.com/slsa-framework/example-package"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "FAILED: SLSA verification failed: ErrorRekorSearch: " in done.stderr
    assert "Pass the Sigstore bundle" in done.stderr and "Traceback" not in done.stderr


def test_a_policy_file_says_what_the_flags_say(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    case_dir = SAMPLE / "gha_generic_v2.1.0_push-v14"
    base = ["verify-artifact", str(SHARED_BINARY), "--provenance-path",
            str(case_dir / "binary-linux-amd64-push-v14.intoto.jsonl")]
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\nminimum-level = 3\n[source]\n'
                      'uri = "github.com/slsa-framework/example-package"\nversioned-tag = "v14"\n')
    assert main([*base, "--policy", str(policy), "--source-branch", "main", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["slsa_build_level"] == 3
    # What the policy says is checked: another version, predicate types, builder refs.
    policy.write_text(policy.read_text().replace('"v14"', '"v15"'))
    assert main([*base, "--policy", str(policy)]) == 1
    assert "ErrorMismatchVersionedTag" in capsys.readouterr().err
    policy.write_text('version = 1\npredicate-types = ["https://slsa.dev/provenance/v1"]\n'
                      '[source]\nuri = "github.com/slsa-framework/example-package"\n')
    assert main([*base, "--policy", str(policy)]) == 1
    assert "FAILED: SLSA verification failed: ErrorInvalidDssePayload: the policy" in \
        capsys.readouterr().err
    generic = ("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
               "generator_generic_slsa3.yml")
    policy.write_text(f'version = 1\n[source]\nuri = "github.com/slsa-framework/example-package"\n'
                      f'[[builder]]\nid = "{generic}"\nrefs = ["refs/tags/v2.0.*"]\n')
    assert main([*base, "--policy", str(policy)]) == 1
    assert "ErrorInvalidRef" in capsys.readouterr().err
    # A flag repeating the policy, and a policy that does not parse: exit 2, one line.
    policy.write_text('version = 1\n[source]\nuri = "github.com/slsa-framework/example-package"\n')
    assert main([*base, "--policy", str(policy), "--source-uri", "github.com/a/b"]) == 2
    assert "both" in capsys.readouterr().err
    policy.write_text("version = 1\nunknown = 2\n")
    assert main([*base, "--policy", str(policy)]) == 2
    assert "CONFIG_INVALID" in capsys.readouterr().err
    assert main(base) == 2
    assert "--source-uri" in capsys.readouterr().err
