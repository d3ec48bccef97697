"""Enforce the layer rules of docs/architecture.md on the source tree (by reading imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "sealtrail"

# Top-level modules/packages of sealtrail and their layer. A new package must be added here.
LAYERS = {
    "errors": 0, "_internal": 0,
    "crypto": 1, "merkle": 1, "models": 1, "net": 1,
    "verify": 2, "log": 2, "ca": 2, "tsa": 2, "issuer": 2, "tufrepo": 2, "clients": 2,
    "identity": 2,
    "trustroot": 3, "batch": 3, "sign": 3, "provenance": 3, "monitor": 3,
    "cli": 4, "server": 4, "release": 4,
}
# Siblings in L2-L4 must not import each other, except these (importer, imported) pairs.
ALLOWED_SIBLINGS = {("provenance", "verify"), ("cli", "server"), ("cli", "release")}
# Packages that do no I/O: bytes in, results or errors out.
SANS_IO = {"crypto", "merkle", "models", "verify"}
IO_PACKAGES = {"socket", "ssl", "http", "httpx", "requests", "subprocess", "asyncio",
               "multiprocessing", "tempfile", "shutil", "pathlib"}
IO_MODULES = {"urllib.request", "importlib.resources"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _package_of(path: Path) -> str | None:
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        name = rel.stem
        return None if name == "__init__" else name
    return rel.parts[0]


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _violations() -> list[str]:
    problems = []
    for path in _modules():
        package = _package_of(path)
        if package is None or package == "data":
            continue
        if package not in LAYERS:
            problems.append(f"{path.relative_to(SRC)}: package {package!r} has no layer")
            continue
        tree = ast.parse(path.read_text(), str(path))
        for name in _imports(tree):
            parts = name.split(".")
            if parts[0] == "sealtrail" and len(parts) > 1:
                target = parts[1]
                if target == "__version__" or target not in LAYERS or target == package:
                    continue
                mine, theirs = LAYERS[package], LAYERS[target]
                if theirs > mine:
                    problems.append(f"{path.relative_to(SRC)}: L{mine} {package} imports "
                                    f"L{theirs} {target}")
                elif theirs == mine and mine >= 2 and (package, target) not in ALLOWED_SIBLINGS:
                    problems.append(f"{path.relative_to(SRC)}: sibling {package} imports {target}")
            if package in SANS_IO and (name in IO_MODULES or parts[0] in IO_PACKAGES):
                problems.append(f"{path.relative_to(SRC)}: sans-I/O package {package} imports {name}")
        if package in SANS_IO:
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                        and node.func.id == "open":
                    problems.append(f"{path.relative_to(SRC)}:{node.lineno}: sans-I/O package "
                                    f"{package} calls open()")
    return problems


def test_layers_and_sans_io_rules_hold() -> None:
    assert _violations() == []


def test_the_rule_checker_catches_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Mutation check: a verify module that opens a socket and imports the CLI must be reported.
    fake = tmp_path / "sealtrail"
    (fake / "verify").mkdir(parents=True)
    (fake / "verify" / "bad.py").write_text("import socket\nfrom sealtrail.cli import main\n"
                                            "open('x')\n")
    monkeypatch.setattr(f"{__name__}.SRC", fake)
    found = _violations()
    assert any("imports L4 cli" in p for p in found)
    assert any("imports socket" in p for p in found)
    assert any("calls open()" in p for p in found)


def test_every_error_derives_from_the_root_and_has_a_unique_code() -> None:
    from sealtrail import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, errors.Error) and cls.__name__.endswith("Error") for cls in classes)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert sorted(errors.__all__) == errors.__all__
