"""The curated public surface: `sealtrail.__all__` is sorted and every name resolves."""

from __future__ import annotations

import sealtrail


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert sealtrail.__all__ == sorted(sealtrail.__all__)
    for name in sealtrail.__all__:
        assert getattr(sealtrail, name) is not None, name


def test_unknown_names_raise_attribute_error() -> None:
    try:
        sealtrail.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_dir_lists_the_public_api_only() -> None:
    import sealtrail.verify.verifier  # noqa: F401  (submodules become package attributes)

    assert dir(sealtrail) == sorted([*sealtrail.__all__, "__version__"])
    for private in ("annotations", "import_module", "Any", "verify", "models", "_EXPORTS"):
        assert private not in dir(sealtrail)
