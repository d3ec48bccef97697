"""`sealtrail verify` flags of issue 13: cosign / sigstore-python aliases, flags that were
silently ignored, --json fields, and the detached look-up against public-good's packaged
signing config (answered by a stand-in transport: no network)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail.cli.main import _build_parser, main
from sealtrail.net.http import Headers, HttpRequest, HttpResponse, http_client
from sealtrail.trustroot import packaged_path
from tests.samples import BEACON_IDENTITY as IDENTITY, BEACON_ISSUER as ISSUER, CASES, RELEASE

POLICY = ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
HELLO = str(RELEASE / "hello.txt")
BUNDLE = RELEASE / "hello.txt.sigstore.json"
TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- A3: the flags users bring from cosign and sigstore-python ------------------------------


def test_sigstore_python_and_cosign_spellings_verify(capsys: pytest.CaptureFixture[str]) -> None:
    repo = "sigstore-conformance/extremely-dangerous-public-oidc-beacon"
    code, out, err = run(capsys, "verify", HELLO, "--cert-identity", IDENTITY,
                         "--cert-oidc-issuer", ISSUER, "--offline",
                         "--certificate-github-workflow-repository", repo,
                         "--certificate-github-workflow-trigger", "workflow_dispatch")
    assert code == 0, err
    code, _, err = run(capsys, "verify", HELLO, *POLICY,
                       "--certificate-github-workflow-repository", "evil/fork")
    assert code == 1 and "EXTENSION_MISMATCH" in err and repo in err


@pytest.mark.parametrize("claim", ["trigger", "sha", "name", "repository", "ref"])
def test_both_spellings_of_each_github_claim_set_the_same_value(claim: str) -> None:
    parser = _build_parser(only="verify")
    cosign = parser.parse_args(["verify", "a", f"--certificate-github-workflow-{claim}", "v"])
    short = parser.parse_args(["verify", "a", f"--cert-github-workflow-{claim}", "v"])
    assert getattr(cosign, f"cert_github_workflow_{claim}") == "v"
    assert vars(cosign) == vars(short)


def test_offline_is_a_documented_no_op(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--offline" in help_text and "changes nothing" in help_text


# -- D: flags that were silently ignored --------------------------------------------------


def _trust_config(path: Path, instance: str) -> Path:
    root = json.loads(Path(packaged_path(instance, "trusted_root.json")).read_text())
    signing = json.loads(Path(packaged_path(instance, "signing_config.v0.2.json")).read_text())
    path.write_text(json.dumps({"mediaType": TRUST_CONFIG_MEDIA_TYPE, "trustedRoot": root,
                                "signingConfig": signing}))
    return path


def test_trust_config_without_signature_gives_the_trusted_root(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    production = _trust_config(tmp_path / "production.json", "production")
    assert run(capsys, "verify", HELLO, *POLICY, "--trust-config", str(production))[0] == 0
    # A config for another instance is used, not ignored: the production bundle fails there.
    staging = _trust_config(tmp_path / "staging.json", "staging")
    code, _, err = run(capsys, "verify", HELLO, *POLICY, "--trust-config", str(staging))
    assert code == 1, err


def test_instance_dir_without_signature_gives_the_trusted_root(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "trust").mkdir()
    _trust_config(tmp_path / "trust" / "trust_config.json", "staging")
    code, _, err = run(capsys, "verify", HELLO, *POLICY, "--instance-dir", str(tmp_path))
    assert code == 1, err
    _trust_config(tmp_path / "trust" / "trust_config.json", "production")
    assert run(capsys, "verify", HELLO, *POLICY, "--instance-dir", str(tmp_path))[0] == 0


def test_certificate_without_signature_is_not_ignored(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    # It asks for the detached pair: the signature beside the artifact by default.
    code, _, err = run(capsys, "verify", HELLO, *POLICY, "--certificate", str(BUNDLE))
    assert code == 2 and "hello.txt.sig" in err


@pytest.mark.parametrize("argv, fragment", [
    (["verify", "a", "b", "--signature", "s", *POLICY], "single ARTIFACT"),
    (["verify", "a", "b", "--certificate", "c", *POLICY], "single ARTIFACT"),
    (["verify", "a", "--signature", "s", "--bundle", "b", *POLICY], "exclude each other"),
    (["verify", "a", "--detached", "--key", "k.pub"], "cannot read key"),
    (["verify", "a", "--signature", "s", "--trusted-root", "r.json", *POLICY], "--trust-config"),
    (["verify", "sha256:" + "0" * 64, "--detached", *POLICY], "needs --signature"),
    (["verify", "a", "--detached", "--offline", *POLICY], "looked up online"),
])
def test_detached_usage_errors_exit_2(argv: list[str], fragment: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and fragment in err, err


def test_one_bundle_serves_several_artifacts(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "hello-copy.txt"
    copy.write_bytes(Path(HELLO).read_bytes())
    code, out, err = run(capsys, "verify", HELLO, str(copy), "--bundle", str(BUNDLE), *POLICY)
    assert code == 0 and out.count("OK: ") == 2, err


def test_an_attestation_is_found_under_its_own_default_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "a.txt"
    artifact.write_bytes((CASES / "a.txt").read_bytes())
    (tmp_path / "a.txt.intoto.sigstore.json").write_bytes(
        (CASES / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json").read_bytes())
    code, out, err = run(capsys, "verify", str(artifact), *POLICY, "--json")
    assert code == 0, err
    result = json.loads(out)
    # DSSE results give the payload type, predicate type and subjects.
    assert result["payload_type"] == "application/vnd.in-toto+json"
    assert result["predicate_type"]
    assert any(s["digest"].get("sha256") for s in result["subjects"])


# -- D: --json fields -----------------------------------------------------------------------


def test_json_failure_keeps_the_identity_and_issuer_found(capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    code, out, _ = run(capsys, "verify", HELLO, "--certificate-identity", "someone@example.com",
                       "--certificate-oidc-issuer", ISSUER, "--json")
    result = json.loads(out)
    assert code == 1 and result["code"] == "IDENTITY_MISMATCH"
    assert result["identity"] == IDENTITY and result["issuer"] == ISSUER


def test_json_usage_errors_carry_the_artifact_and_exit_code(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", "sha256:zz", "--bundle", "b", *POLICY, "--json")
    result = json.loads(out)
    assert code == 2 and result == {**result, "ok": False, "artifact": "sha256:zz",
                                    "code": "USAGE", "exit_code": 2}
    assert len(err.strip().splitlines()) == 1


def test_identity_mismatch_names_the_identity_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", HELLO, "--certificate-identity", "someone@example.com",
                       "--certificate-oidc-issuer", ISSUER)
    assert code == 1 and err.count(IDENTITY) == 1 and "someone@example.com" in err


def test_an_unanchored_pattern_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", HELLO, "--certificate-identity-regexp",
                       "extremely-dangerous", "--certificate-oidc-issuer-regexp",
                       r"^https://token\.actions\.")
    assert code == 0
    assert err.count("warning:") == 1 and "'extremely-dangerous' is not anchored" in err


# -- A2: out of the box, the detached look-up asks public-good's Rekor ----------------------


def _detached_pair(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    bundle = json.loads(BUNDLE.read_text())
    signature, pem = tmp_path / "hello.txt.sig", tmp_path / "hello.txt.pem"
    signature.write_text(bundle["messageSignature"]["signature"] + "\n")
    der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    pem.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return signature, pem, bundle["verificationMaterial"]["tlogEntries"][0]


def _as_rekor_v1(entry: dict[str, Any]) -> dict[str, Any]:
    """The Rekor v1 LogEntry that a bundle's tlog entry was made from."""
    proof = entry["inclusionProof"]
    return {"body": entry["canonicalizedBody"], "integratedTime": int(entry["integratedTime"]),
            "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
            "logIndex": int(entry["logIndex"]),
            "verification": {
                "signedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                "inclusionProof": {
                    "logIndex": int(proof["logIndex"]), "treeSize": int(proof["treeSize"]),
                    "rootHash": base64.b64decode(proof["rootHash"]).hex(),
                    "hashes": [base64.b64decode(h).hex() for h in proof["hashes"]],
                    "checkpoint": proof["checkpoint"]["envelope"]}}}


class FakeRekor:
    """Answers like rekor.sigstore.dev: the index by hash, then retrieve by UUID."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = entries
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        query = json.loads(request.body or b"{}")
        if request.url.endswith("/api/v1/index/retrieve"):
            answer: Any = list(self.entries)
        elif request.url.endswith("/api/v1/log/entries/retrieve"):
            answer = [{uuid: self.entries[uuid]} for uuid in query.get("entryUUIDs", [])
                      if uuid in self.entries]
        else:
            return HttpResponse(404, Headers(), b"{}")
        return HttpResponse(200, Headers({"content-type": "application/json"}),
                            json.dumps(answer).encode())


def _use(monkeypatch: pytest.MonkeyPatch, rekor: FakeRekor) -> None:
    import sealtrail.sign.detached as detached

    monkeypatch.setattr(detached, "http_client",
                        lambda *args, **kwargs: http_client(transport=rekor))


def test_detached_pair_is_looked_up_in_public_goods_rekor_out_of_the_box(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    signature, pem, entry = _detached_pair(tmp_path)
    rekor = FakeRekor({"aa" * 40: {"body": "e30=", "integratedTime": 1, "logID": "00",
                                   "logIndex": 1, "verification": {}},  # another entry
                       "bb" * 40: _as_rekor_v1(entry)})
    _use(monkeypatch, rekor)
    code, out, err = run(capsys, "verify", HELLO, "--signature", str(signature),
                         "--certificate", str(pem), *POLICY)
    assert code == 0, err
    assert "logged at index 79571823" in out
    assert rekor.requests[0].url == "https://rekor.sigstore.dev/api/v1/index/retrieve"
    assert "looking up the log entry online" in err and "https://rekor.sigstore.dev" in err


def test_no_entry_found_has_its_own_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    signature, pem, _ = _detached_pair(tmp_path)
    rekor = FakeRekor({})
    _use(monkeypatch, rekor)
    code, out, _ = run(capsys, "verify", HELLO, "--signature", str(signature),
                       "--certificate", str(pem), *POLICY, "--json")
    result = json.loads(out)
    assert code == 1 and result["code"] == "TLOG_ENTRY_NOT_FOUND"
    assert "https://rekor.sigstore.dev" in result["message"]
    # The index had nothing: the exact entry was asked for too, then no more.
    assert [r.url.rsplit("/api/", 1)[1] for r in rekor.requests] == [
        "v1/index/retrieve", "v1/log/entries/retrieve"]


# -- B6/B7 wiring: a DSSE payload without an artifact; which line of a JSON Lines file -------


@pytest.fixture(scope="module")
def fake() -> Any:
    from tests.fakes.instance import FakeInstance

    return FakeInstance()


def _fake_root(tmp_path: Path, fake: Any) -> str:
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(fake.trusted_root_json()))
    return str(path)


def _fake_policy() -> list[str]:
    from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER

    return ["--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer",
            DEFAULT_ISSUER]


def test_a_dsse_payload_verifies_without_an_artifact(tmp_path: Path, fake: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "notes.sigstore.json"
    bundle.write_text(json.dumps(fake.sign_dsse(b"release notes\n", payload_type="text/plain")))
    root = _fake_root(tmp_path, fake)
    written = tmp_path / "notes.txt"
    code, out, err = run(capsys, "verify", "--bundle", str(bundle), *_fake_policy(),
                         "--trusted-root", root, "--payload-type", "text/plain",
                         "--output-payload", str(written))
    assert code == 0, err
    assert out.startswith(f"OK: {bundle}: DSSE payload of type text/plain (14 bytes, written "
                          f"to {written})")
    assert written.read_bytes() == b"release notes\n"

    # To standard output: the payload alone there, the verdict on standard error.
    code, out, err = run(capsys, "verify", "--bundle", str(bundle), *_fake_policy(),
                         "--trusted-root", root, "--output-payload", "-")
    assert code == 0 and out == "release notes\n" and err.startswith("OK: ")

    code, out, _ = run(capsys, "verify", "--bundle", str(bundle), *_fake_policy(),
                       "--trusted-root", root, "--json")
    result = json.loads(out)
    assert code == 0 and result["payload_type"] == "text/plain"
    assert base64.b64decode(result["payload"]) == b"release notes\n"

    # Another payload type, another identity: refused, nothing written.
    written.unlink()
    code, _, err = run(capsys, "verify", "--bundle", str(bundle), *_fake_policy(),
                       "--trusted-root", root, "--payload-type", "application/json",
                       "--output-payload", str(written))
    assert code == 1 and "SUBJECT_MISMATCH" in err and not written.exists()
    code, _, err = run(capsys, "verify", "--bundle", str(bundle), "--trusted-root", root,
                       "--certificate-identity", "someone@example.com",
                       "--certificate-oidc-issuer", _fake_policy()[3])
    assert code == 1 and "IDENTITY_MISMATCH" in err


@pytest.mark.parametrize("argv, fragment", [
    (["verify", *POLICY], "give ARTIFACT"),
    (["verify", HELLO, "--bundle", str(BUNDLE), "--payload-type", "text/plain", *POLICY],
     "without ARTIFACT"),
    (["verify", "--bundle", str(BUNDLE), "--detached", *POLICY], "give ARTIFACT"),
])
def test_payload_flags_usage_errors(argv: list[str], fragment: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and fragment in err


def test_text_output_names_the_line_of_a_json_lines_bundle(
        tmp_path: Path, fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"app\n")
    other = fake.sign_artifact(b"another artifact\n")
    good = fake.sign_artifact(b"app\n")
    bundles = tmp_path / "app.jsonl"
    bundles.write_text(json.dumps(other) + "\n" + json.dumps(good) + "\n")
    code, out, err = run(capsys, "verify", str(artifact), "--bundle", str(bundles),
                         *_fake_policy(), "--trusted-root", _fake_root(tmp_path, fake))
    assert code == 0, err
    assert out.rstrip().endswith("(bundle on line 2)")


def test_a_bundle_without_log_entry_is_reported_as_not_logged(
        tmp_path: Path, fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # GitHub's instance: no log in its root, no entry in its bundles, a timestamp instead.
    signer = fake.signer(sct_count=0)
    bundle = fake.sign_artifact(b"app\n", signer=signer, rekor=2, timestamp=True)
    bundle["verificationMaterial"]["tlogEntries"] = []
    document = fake.trusted_root_json()
    document["tlogs"], document["ctlogs"] = [], []
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(document))
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"app\n")
    Path(f"{artifact}.sigstore.json").write_text(json.dumps(bundle))
    code, out, err = run(capsys, "verify", str(artifact), *_fake_policy(),
                         "--trusted-root", str(root))
    assert code == 0, err
    assert "not logged (its trusted root has no transparency log)" in out
    assert "index None" not in out
