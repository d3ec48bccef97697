"""sealtrail.provenance.npm: the package purl npm's provenance names, read from a tarball."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from sealtrail.errors import InputError
from sealtrail.provenance import npm


def tarball(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def manifest(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize("name, version, purl", [
    ("sigstore", "3.0.0", "pkg:npm/sigstore@3.0.0"),
    ("@sigstore/verify", "1.2.1", "pkg:npm/%40sigstore/verify@1.2.1"),
    ("left-pad", "1.0.0-beta.1+build.5", "pkg:npm/left-pad@1.0.0-beta.1+build.5"),
])
def test_purl_of_a_tarball(tmp_path: Path, name: str, version: str, purl: str) -> None:
    path = tarball(tmp_path / "p.tgz", {"package/README.md": b"x" * 1000,
                                        "package/lib/package.json": manifest(name="nested"),
                                        "package/package.json": manifest(name=name,
                                                                         version=version)})
    package = npm.read_package(str(path))
    assert package == npm.NpmPackage(name, version) and package.purl == purl


def test_another_top_directory_is_read_too(tmp_path: Path) -> None:
    # Some old npm tarballs use another top directory than package/; npm accepts any one.
    path = tarball(tmp_path / "p.tgz", {"node/package.json": manifest(name="a", version="1")})
    assert npm.read_package(str(path)) == npm.NpmPackage("a", "1")


@pytest.mark.parametrize("files, mode", [
    ({"package/index.js": b"1"}, "w:gz"),                               # no package.json
    ({"package/package.json": manifest(name="a", version="1")}, "w"),  # not gzipped
    ({"package.json": manifest(name="a", version="1")}, "w:gz"),       # not in a directory
])
def test_not_an_npm_tarball(tmp_path: Path, files: dict[str, bytes], mode: str) -> None:
    assert npm.read_package(str(tarball(tmp_path / "p.tgz", files, mode))) is None


def test_not_a_tarball_at_all(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"\x1f\x8b\x08 truncated gzip")
    assert npm.read_package(str(path)) is None
    path.write_bytes(b"plain text")
    assert npm.read_package(str(path)) is None


@pytest.mark.parametrize("data, match", [
    (b"{not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (manifest(version="1.0.0"), "no valid package name"),
    (manifest(name="bad name", version="1.0.0"), "no valid package name"),
    (manifest(name="a"), "no valid version"),
    (manifest(name="a", version="1 0"), "no valid version"),
])
def test_bad_manifest_is_an_input_error(tmp_path: Path, data: bytes, match: str) -> None:
    path = tarball(tmp_path / "p.tgz", {"package/package.json": data})
    with pytest.raises(InputError, match=match):
        npm.read_package(str(path))


def test_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = manifest(name="a", version="1", description="x" * 200)
    path = tarball(tmp_path / "p.tgz", {"package/package.json": big})
    monkeypatch.setattr(npm, "MAX_PACKAGE_JSON_BYTES", 100)
    with pytest.raises(InputError, match="too large"):
        npm.read_package(str(path))
    monkeypatch.setattr(npm, "MAX_PACKAGE_JSON_BYTES", 1 << 20)
    files = {f"package/f{i}": b"" for i in range(5)}
    files["package/package.json"] = manifest(name="a", version="1")
    path = tarball(tmp_path / "many.tgz", files)
    assert npm.read_package(str(path)) is not None
    monkeypatch.setattr(npm, "MAX_MEMBERS", 3)
    assert npm.read_package(str(path)) is None  # package.json lies beyond the members read
    monkeypatch.setattr(npm, "MAX_MEMBERS", 100)
    files = {"package/blob": b"y" * 5000, "package/package.json": manifest(name="a", version="1")}
    path = tarball(tmp_path / "blob.tgz", files)
    monkeypatch.setattr(npm, "MAX_SCANNED_BYTES", 1000)
    assert npm.read_package(str(path)) is None
