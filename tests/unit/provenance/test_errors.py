"""slsa-verifier's error names are the codes of sealtrail's provenance errors."""

from __future__ import annotations

import pytest

from sealtrail import errors
from sealtrail.provenance import errors as provenance_errors


@pytest.mark.parametrize("name", [n for n in provenance_errors.__all__ if n.startswith("Error")])
def test_each_error_name_is_its_code(name: str) -> None:
    cls = getattr(provenance_errors, name)
    assert cls.code == name
    assert issubclass(cls, errors.Error)
    # Failed checks exit 1; unreadable provenance exits 2.
    expected = 2 if issubclass(cls, errors.InputError) else 1
    assert cls("x").exit_code == expected
