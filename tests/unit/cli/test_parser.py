"""The command line is built for the command being run only; it must parse the same."""

from __future__ import annotations

import re

import pytest

from sealtrail.cli._common import command_in
from sealtrail.cli.main import _build_parser

ARGVS = [
    ["verify", "a.txt", "--certificate-identity", "me@example.com",
     "--certificate-oidc-issuer", "https://issuer", "--json", "--jobs", "2"],
    ["verify", "sha256:" + "0" * 64, "--bundle", "b.json", "--key", "k.pub", "--staging"],
    ["sign", "a", "b", "--trust-config", "t.json", "--identity-token", "x", "--rekor-version",
     "2", "--overwrite", "--jobs", "4"],
    ["attest", "a", "--predicate", "p.json", "--predicate-type", "https://t", "--instance", "n"],
    ["generate-key-pair", "--output-key", "k", "--overwrite"],
    ["log", "serve", "dir", "--port", "0", "--port-file", "pf"],
    ["log", "tlogs", "dir", "--base-url", "http://x"],
    ["trust", "add", "name", "https://tuf", "--root", "root.json"],
    ["trust", "show", "--json"],
    ["init", "dir", "--port", "9", "--builtin-issuer"],
    ["serve", "dir", "--port-file", "pf"],
    ["token", "github", "--instance", "dir", "--repository", "o/r"],
    ["rotate", "log", "dir", "--api", "2"],
    ["ca", "dry-run", "tok", "--instance", "dir"],
    ["--version"],
    [],
]


@pytest.mark.parametrize("argv", ARGVS, ids=lambda argv: " ".join(argv[:2]) or "none")
def test_the_lazy_parser_parses_like_the_full_one(argv: list[str]) -> None:
    full = vars(_build_parser().parse_args(argv))
    lazy = vars(_build_parser(only=command_in(argv) or "").parse_args(argv))
    assert lazy == full


def test_only_the_wanted_command_gets_its_arguments() -> None:
    parser = _build_parser(only="sign")
    with pytest.raises(SystemExit) as info:  # verify's flags are not defined in this build
        parser.parse_args(["verify", "a", "--certificate-identity", "x"])
    assert info.value.code == 2


@pytest.mark.parametrize("argv,expected", [
    (["sign", "a"], "sign"), (["--version"], None), (["--version", "verify", "x"], "verify"),
    ([], None), (["-h"], None),
])
def test_command_in(argv: list[str], expected: str | None) -> None:
    assert command_in(argv) == expected


def test_every_command_is_listed_and_an_unknown_one_refused(capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    parser = _build_parser(only="")
    help_text = parser.format_help()
    for name in ("verify", "sign", "attest", "generate-key-pair", "log", "trust", "init",
                 "serve", "token", "rotate", "ca"):
        assert re.search(rf"\n    {name}\s", help_text), name
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["bogus"])
    assert info.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
