"""The trust roots shipped in the package (sealtrail.trustroot): each packaged TUF root is
root metadata signed by a threshold of its own keys, each trusted root parses, each has the
date it was last found current, and they are found by instance name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealtrail.errors import InputError
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.trustroot import (PACKAGED_AS_OF, load_trusted_root, packaged_instances,
                                 packaged_path)
from sealtrail.trustroot.tuf_client import BUILTIN_INSTANCES, _parse_root


def test_public_good_is_packaged() -> None:
    assert packaged_instances()[:2] == ("public-good", "public-good-staging")


@pytest.mark.parametrize("name", packaged_instances())
def test_every_packaged_root_verifies_and_parses(name: str) -> None:
    root = Path(packaged_path(name, "root.json")).read_bytes()
    parsed = _parse_root(root, f"{name} root.json")  # threshold of its own root keys
    assert parsed.version == json.loads(root)["signed"]["version"] >= 1
    assert isinstance(TrustedRoot.from_json(
        Path(packaged_path(name, "trusted_root.json")).read_bytes()), TrustedRoot)
    assert name in BUILTIN_INSTANCES  # followed through TUF like public-good
    assert BUILTIN_INSTANCES[name][0].startswith("https://")


@pytest.mark.parametrize("name", packaged_instances())
def test_every_packaged_copy_has_its_as_of_date(name: str) -> None:
    assert name in PACKAGED_AS_OF


def test_short_and_full_names() -> None:
    assert packaged_path("production", "root.json") == packaged_path("public-good", "root.json")
    assert packaged_path("staging", "root.json") == \
        packaged_path("public-good-staging", "root.json")
    assert load_trusted_root(instance="public-good-staging") == load_trusted_root(
        instance="staging")
    for unknown in ("mine", "../public-good", ""):
        with pytest.raises(InputError, match="unknown trust instance"):
            packaged_path(unknown, "root.json")
