"""The GitHub Action and the workflows sealtrail ships pass zizmor and actionlint with no finding.

zizmor (a PyPI wheel, the test extra) audits workflows and composite actions for the CI attacks
issue 15 names: template injection, unpinned actions, excessive permissions, persisted
credentials, dangerous environment-file writes. It runs with `--offline` (its online audits
would ask GitHub's API; this test never touches the network), `--no-config` and `--no-ignores`
(no configuration file or inline comment may hide a finding).

actionlint is the npm package `actionlint` (interop/, installed by `make test`): the Go linter
built to WebAssembly, which node runs. It checks workflow syntax, expressions and contexts (and
flags untrusted event data in scripts); it lints workflows only, so a composite action's steps are
linted as the steps of a reusable workflow whose inputs are the action's (the same step syntax
and contexts: `inputs`, `github`, `steps`, `runner`).

Each linter is also shown to report a deliberately bad workflow, so "no finding" means something.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACTIONLINT = REPO / "interop" / "node_modules" / "actionlint"

# Runs actionlint's WebAssembly build over the files named on the command line (as
# path=contents pairs on stdin, JSON), printing its findings as one JSON list.
_ACTIONLINT_RUNNER = """
const { createLinter } = require(process.env.ACTIONLINT_MODULE);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const lint = await createLinter();
  const findings = [];
  for (const [path, text] of JSON.parse(input)) findings.push(...lint(text, path));
  process.stdout.write(JSON.stringify(findings));
});
"""

# A workflow with one mistake of each kind the shipped files avoid: event data expanded into a
# script, an action pinned by tag, default (write-all) permissions, persisted credentials, an
# undefined context property.
BAD_WORKFLOW = """\
name: bad
on: issues
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.issue.title }}"
      - run: echo "${{ matrix.missing }}"
"""


def shipped_files() -> list[Path]:
    """Every action and workflow file the repository ships (outside tests and installs)."""
    found = [REPO / name for name in ("action.yml", "action.yaml") if (REPO / name).exists()]
    workflows = REPO / ".github" / "workflows"
    found += sorted(p for p in workflows.glob("*") if p.suffix in (".yml", ".yaml"))
    return found


def zizmor(*paths: Path) -> tuple[int, list[dict[str, Any]], str]:
    executable = shutil.which("zizmor", path=str(Path(sys.executable).parent))
    assert executable is not None, "zizmor is a test dependency (pyproject [test])"
    env = {k: v for k, v in os.environ.items()
           if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN", "ZIZMOR_CONFIG")}
    done = subprocess.run([executable, "--offline", "--no-config", "--no-ignores",
                           "--format", "json", "--no-progress", *map(str, paths)],
                          check=False, capture_output=True, text=True, timeout=120, env=env)
    findings = json.loads(done.stdout) if done.stdout.strip() else []
    return done.returncode, findings, done.stderr


def as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """A composite action's steps as the one job of a reusable workflow with its inputs."""
    assert action["runs"]["using"] == "composite"
    inputs = {name: {"type": "string", "required": False}
              for name in action.get("inputs") or {}}
    return {"name": action["name"], "on": {"workflow_call": {"inputs": inputs}},
            "permissions": {}, "jobs": {"action": {"runs-on": "ubuntu-latest",
                                                    "steps": action["runs"]["steps"]}}}


def actionlint(files: list[tuple[str, str]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} is missing: `make test` installs interop/'s npm packages")
    done = subprocess.run([node, "-e", _ACTIONLINT_RUNNER], input=json.dumps(files), check=False,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ACTIONLINT_MODULE": str(ACTIONLINT)})
    assert done.returncode == 0, done.stderr[-3000:]
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return findings


def actionlint_inputs(paths: list[Path]) -> list[tuple[str, str]]:
    files = []
    for path in paths:
        text = path.read_text()
        document = yaml.safe_load(text)
        if "runs" in document:  # an action: its steps as a workflow's
            text = yaml.safe_dump(as_workflow(document), sort_keys=False)
        files.append((str(path.relative_to(REPO)), text))
    return files


def test_the_action_and_the_reusable_workflow_are_shipped() -> None:
    names = {str(p.relative_to(REPO)) for p in shipped_files()}
    assert {"action.yml", ".github/workflows/provenance.yml"} <= names


def test_zizmor_finds_nothing_in_the_shipped_files() -> None:
    code, findings, err = zizmor(*shipped_files())
    assert findings == [] and code == 0, json.dumps(findings, indent=1)[-4000:] + err[-2000:]


def test_actionlint_finds_nothing_in_the_shipped_files() -> None:
    findings = actionlint(actionlint_inputs(shipped_files()))
    assert findings == [], json.dumps(findings, indent=1)


def test_zizmor_reports_a_bad_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)
    code, findings, err = zizmor(bad)
    assert code != 0, err
    audits = {finding["ident"] for finding in findings}
    assert {"template-injection", "unpinned-uses", "excessive-permissions",
            "artipacked"} <= audits, audits


def test_zizmor_reports_a_bad_composite_action(tmp_path: Path) -> None:
    """The shipped action with its input expanded into the script, as it must not be."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "Sign the release")
    step["run"] = "sealtrail release sign ${{ inputs.directory }}"
    bad = tmp_path / "action.yml"
    bad.write_text(yaml.safe_dump(action, sort_keys=False))
    code, findings, err = zizmor(bad)
    assert code != 0, err
    assert "template-injection" in {finding["ident"] for finding in findings}


def test_actionlint_reports_a_bad_workflow() -> None:
    findings = actionlint([(".github/workflows/bad.yml", BAD_WORKFLOW)])
    messages = " | ".join(f["message"] for f in findings)
    assert '"github.event.issue.title" is potentially untrusted' in messages, messages
    assert 'property "missing" is not defined' in messages, messages


def test_actionlint_reports_a_bad_composite_action(tmp_path: Path) -> None:
    """The action's steps are linted: an undefined input and untrusted data in a script."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    action["runs"]["steps"] += [
        {"shell": "bash", "run": 'echo "${{ inputs.no-such-input }}"'},
        {"shell": "bash", "run": 'echo "${{ github.event.pull_request.title }}"'}]
    bad = tmp_path / "action.yml"
    bad.write_text(yaml.safe_dump(action, sort_keys=False))
    findings = actionlint([(str(bad), yaml.safe_dump(as_workflow(action), sort_keys=False))])
    messages = " | ".join(f["message"] for f in findings)
    assert 'property "no-such-input" is not defined' in messages, messages
    assert "potentially untrusted" in messages, messages
