"""Identity unit tests never look at the real CI environment nor the network.

`id.detect_credential` reads ``os.environ`` itself and, on a Google Cloud machine, asks the
metadata server: every test here starts outside any CI with that boundary stubbed (no
credential found). A test that wants the real `id` code path takes :func:`real_detect`,
and must then set up an environment in which `id` stops before any request."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import id as ambient
import pytest

#: The environment variables by which `id` (and sealtrail) recognise a CI system.
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITLAB_CI", "SIGSTORE_ID_TOKEN",
                "BUILDKITE", "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME")

_REAL_DETECT = ambient.detect_credential


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """No CI variables, and a `detect_credential` that finds nothing; yields the audiences
    it was asked for."""
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    asked: list[str] = []

    def nothing(audience: str) -> None:
        asked.append(audience)
        return None

    monkeypatch.setattr(ambient, "detect_credential", nothing)
    yield asked


@pytest.fixture
def real_detect() -> Callable[[str], str | None]:
    """The real :func:`id.detect_credential`."""
    return _REAL_DETECT
