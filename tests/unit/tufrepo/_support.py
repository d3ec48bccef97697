"""Helpers for the trustrepo tests: a python-tuf client that reads a repository from disk.

``DirFetcher`` implements python-tuf's real ``FetcherInterface`` and answers each URL with
``sealtrail.tufrepo.resolve`` -- the same mapping a server uses -- so these tests exercise
the exact URL layout sigstore-python requests, without any socket.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tuf.api import exceptions
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from sealtrail.tufrepo import resolve

BASE = "http://tuf.invalid/repo/"


class DirFetcher(FetcherInterface):
    """Serve ``BASE/<path>`` from a repository directory; record every requested path."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = directory
        self.requested: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        assert url.startswith(BASE), url
        path = url[len(BASE):]
        self.requested.append(path)
        found = resolve(self.directory, path)
        if found is None:
            raise exceptions.DownloadHTTPError(f"not found: {path}", 404)
        return iter([Path(found).read_bytes()])


def fetch_targets(repo_dir: str | os.PathLike[str], client_dir: str | os.PathLike[str],
                  bootstrap: bytes, names: tuple[str, ...] = ("trusted_root.json",),
                  fetcher: DirFetcher | None = None) -> dict[str, bytes]:
    """Run python-tuf's client workflow (as sigstore-python configures it) and download targets."""
    client = Path(client_dir)
    (client / "metadata").mkdir(parents=True, exist_ok=True)
    (client / "targets").mkdir(parents=True, exist_ok=True)
    updater = Updater(metadata_dir=str(client / "metadata"), metadata_base_url=BASE,
                      target_dir=str(client / "targets"), target_base_url=BASE + "targets/",
                      fetcher=fetcher or DirFetcher(repo_dir), bootstrap=bootstrap)
    updater.refresh()
    out = {}
    for name in names:
        info = updater.get_targetinfo(name)
        assert info is not None, name
        path = updater.find_cached_target(info) or updater.download_target(info)
        out[name] = Path(path).read_bytes()
    return out
