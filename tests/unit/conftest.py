"""Fixtures shared by the unit tests of RFC 3161 timestamps (parsing and grammar)."""

from __future__ import annotations

import pytest

from tests.fakes.tsa import FakeTSA


@pytest.fixture(scope="module")
def ec_tsa() -> FakeTSA:
    return FakeTSA(key_type="ec")


@pytest.fixture(scope="module")
def rsa_tsa() -> FakeTSA:
    return FakeTSA(key_type="rsa", name="fake-rsa-tsa")
