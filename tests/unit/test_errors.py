"""The one mapping from errors to exit statuses: 1 verification failed, 2 usage or input,
3 a service could not be reached or failed (README "Exit status")."""

from __future__ import annotations

import pytest

from sealtrail import errors
from sealtrail.errors import (ConfigInvalidError, Error, InputError, LogError,
                              ServiceUnavailableError, TokenInvalidError,
                              TrustUpdateError, UsageError, VerificationError)

CLASSES = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_has_one_of_the_documented_exit_codes(cls: type[Error]) -> None:
    if issubclass(cls, VerificationError):
        expected = 1
    elif issubclass(cls, (ServiceUnavailableError, TrustUpdateError, LogError)):
        expected = 3
    else:
        assert issubclass(cls, (UsageError, InputError, TokenInvalidError)) or cls is Error
        expected = 2
    assert cls.exit_code == expected


def test_the_json_form_carries_the_exit_code_beside_the_code() -> None:
    assert ServiceUnavailableError("the CA did not answer", actual="HTTP 503").to_json() == {
        "code": "SERVICE_UNAVAILABLE", "exit_code": 3,
        "message": "the CA did not answer (got HTTP 503)", "actual": "HTTP 503"}
    assert ConfigInvalidError("bad").to_json()["exit_code"] == 2
    assert VerificationError("no").to_json()["exit_code"] == 1


@pytest.mark.parametrize("exc,cls,message", [
    (ConnectionRefusedError(111, "Connection refused"), ServiceUnavailableError,
     "a connection failed: Connection refused"),
    (TimeoutError("timed out"), ServiceUnavailableError, "a connection failed: timed out"),
    (FileNotFoundError(2, "No such file or directory", "/srv/x"), InputError,
     "/srv/x: No such file or directory"),
    (PermissionError(13, "Permission denied", "/etc/k"), InputError,
     "/etc/k: Permission denied"),
])
def test_an_os_error_gets_a_class_and_so_an_exit_status(exc: OSError, cls: type[Error],
                                                        message: str) -> None:
    error = errors.from_os_error(exc)
    assert type(error) is cls and error.message == message


def _codes_table() -> dict[str, int]:
    """docs/verification.md's "Error codes" table: code -> exit status, as documented."""
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "verification.md").read_text()
    assert "\n## Error codes\n" in text, "docs/verification.md has no Error codes section"
    section = text.split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([0-3]) \|", section, re.M)
    codes = dict((code, int(status)) for code, status in rows)
    assert len(codes) == len(rows), "a code is listed twice"
    return codes


def test_every_code_is_in_the_documented_table_with_its_exit_status() -> None:
    documented = _codes_table()
    actual = {cls.code: cls.exit_code for cls in CLASSES}
    assert sorted(set(actual) - set(documented)) == [], "codes missing from the table"
    assert sorted(set(documented) - set(actual)) == [], "documented codes that do not exist"
    assert documented == actual
