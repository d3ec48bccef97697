"""Which file of a release directory is what: artifacts, and the outputs `release sign`
writes beside them (bundles, .sig/.pem, SHA256SUMS, provenance, VERIFY.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

from sealtrail._internal.files import digest_file
from sealtrail.release.checksums import CHECKSUMS_NAME

__all__ = ["BUNDLE_SUFFIX", "INSTRUCTIONS_NAME", "PROVENANCE_NAME", "ReleaseFiles",
           "bundle_of", "hash_artifacts", "is_output", "scan"]

#: A signature bundle beside each file, as `sealtrail sign` and sigstore-python name it.
BUNDLE_SUFFIX = ".sigstore.json"
DETACHED_SUFFIXES = (".sig", ".pem")
#: SPEC: slsa-github-generator names the provenance of several subjects multiple.intoto.jsonl
#: (attest-provenance does too): never the name of a signature bundle.
PROVENANCE_NAME = "multiple.intoto.jsonl"
INSTRUCTIONS_NAME = "VERIFY.md"
FIXED_OUTPUTS = (CHECKSUMS_NAME, PROVENANCE_NAME, INSTRUCTIONS_NAME)


def bundle_of(name: str) -> str:
    return name + BUNDLE_SUFFIX


def is_output(name: str, names: set[str] | frozenset[str]) -> bool:
    """Whether ``name`` (among the directory's ``names``) is something `release sign`
    writes rather than an artifact: a fixed name, a bundle, or a .sig/.pem of a file that
    is there. Hidden files (temporaries of an interrupted run) are never artifacts."""
    if name.startswith(".") or name in FIXED_OUTPUTS or name.endswith(BUNDLE_SUFFIX):
        return True
    return any(name.endswith(suffix) and name[:-len(suffix)] in names
               for suffix in DETACHED_SUFFIXES)


class ReleaseFiles(NamedTuple):
    """A release directory as found: artifact names, and every regular file's name."""

    artifacts: list[str]
    names: frozenset[str]


def scan(directory: str) -> ReleaseFiles:
    """The regular files of ``directory`` (not recursing: a release is flat; symbolic links
    are not followed, so a link cannot pull a file from elsewhere into the release)."""
    names = set()
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                names.add(entry.name)
    frozen = frozenset(names)
    return ReleaseFiles(sorted(n for n in names if not is_output(n, frozen)), frozen)


def _sha256(path: str) -> str:
    return digest_file(path, ("sha256",), what="file")["sha256"].hex()


def hash_artifacts(directory: str, names: Sequence[str]) -> dict[str, str]:
    """name -> sha256 hex of every artifact, hashed in threads (hashlib releases the GIL on
    large buffers, so several cores work). Only file reading: verification imports this
    without the signer's network stack."""
    paths = [os.path.join(directory, name) for name in names]
    if len(paths) < 2:
        return {name: _sha256(path) for name, path in zip(names, paths)}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, len(paths))) as pool:
        return dict(zip(names, pool.map(_sha256, paths)))
