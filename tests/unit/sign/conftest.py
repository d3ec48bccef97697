"""Fixtures shared by the signer's unit tests: a fake instance (keys, CA, TSA, logs) per
test module, and the in-memory signing services over it, fresh for each test."""

from __future__ import annotations

import pytest

from tests.fakes.instance import FakeInstance
from tests.unit.sign._services import FakeServices


@pytest.fixture(scope="module")
def instance() -> FakeInstance:
    return FakeInstance()


@pytest.fixture
def services(instance: FakeInstance) -> FakeServices:
    return FakeServices(instance)
