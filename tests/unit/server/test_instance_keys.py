"""Every private key of an instance is refused when group or others may read it (as the CA
key always was: CONFIG_INVALID, "readable by others"), and `init` makes no directory or file
that others can write, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import ConfigInvalidError
from sealtrail.server.instance import Instance


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return Instance.init(str(tmp_path_factory.mktemp("keys") / "instance"), port=8080,
                         builtin_issuer=True)


LOADERS: dict[str, Callable[[Instance], Any]] = {
    "keys/ca-intermediate.pem": lambda i: i.certificate_authority(),
    "keys/oidc.pem": lambda i: i.builtin_issuer("email"),
    "keys/token-secret": lambda i: i.token_secret(),
    "logs/keys/rekor.pem": lambda i: i.logs.private_key("rekor"),
    "logs/keys/log1.pem": lambda i: i.logs.private_key("log1"),
    "keys/tuf/tuf-timestamp.pem": lambda i: i.refresh_tuf(),
}


@pytest.fixture
def loosened(instance: Instance, request: pytest.FixtureRequest) -> Iterator[Path]:
    path = Path(instance.directory) / request.param[0]
    os.chmod(path, request.param[1])
    try:
        yield path
    finally:
        os.chmod(path, 0o600)


@pytest.mark.parametrize("loosened", [(name, mode) for name in LOADERS
                                      for mode in (0o640, 0o604)],
                         indirect=True, ids=lambda p: f"{p[0]}-{oct(p[1])}")
def test_a_key_others_can_read_is_refused(instance: Instance, loosened: Path) -> None:
    relative = loosened.relative_to(instance.directory).as_posix()
    with pytest.raises(ConfigInvalidError) as refused:
        LOADERS[relative](instance)
    assert refused.value.code == "CONFIG_INVALID" and refused.value.exit_code == 2
    assert f"{loosened.name} is readable by others" in refused.value.message
    assert refused.value.actual == oct(stat.S_IMODE(loosened.stat().st_mode))


@pytest.mark.parametrize("name", list(LOADERS))
def test_each_key_loads_when_it_is_private(instance: Instance, name: str) -> None:
    LOADERS[name](instance)  # the refusal above is about the mode, not the key


# Directories holding private keys are the owner's alone; the rest may be read by all.
PRIVATE_DIRS = {"keys", "keys/tuf", "logs/keys"}


def test_init_under_umask_000_creates_nothing_others_can_write(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        instance = Instance.init(str(tmp_path / "instance"), port=8080, builtin_issuer=True)
    finally:
        os.umask(old)
    root = Path(instance.directory)
    seen = {"keys/tuf/tuf-root.pem", "keys/token-secret", "logs/keys/rekor.pub.pem",
            "tuf/metadata", "trust"}
    for path in [root, *root.rglob("*")]:
        relative = path.relative_to(root).as_posix()
        seen.discard(relative)
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert not mode & 0o022, f"{relative} is writable by others: {oct(mode)}"
        if path.is_dir():
            assert mode == (0o700 if relative in PRIVATE_DIRS else 0o755), (relative, oct(mode))
        elif path.parent.relative_to(root).as_posix() in PRIVATE_DIRS \
                and not path.name.endswith(".pub.pem"):
            assert mode == 0o600, (relative, oct(mode))
    assert not seen, f"expected in the instance: {seen}"
