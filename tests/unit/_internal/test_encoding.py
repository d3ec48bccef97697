"""The strict base64 reader every untrusted JSON field goes through."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail._internal import encoding
from sealtrail.errors import BundleMalformedError

E = BundleMalformedError


@pytest.mark.parametrize("text, data", [
    ("YWJj", b"abc"), ("YQ==", b"a"), ("YQ", b"a"), ("YQ=", b"a"), ("", b""),
    ("-_-_", base64.b64decode("+/+/")), ("+/+/", base64.b64decode("+/+/")),
])
def test_accepted_forms(text: str, data: bytes) -> None:
    assert encoding.b64decode(text, "f", E) == data


@pytest.mark.parametrize("text, message", [
    ("Y Q==", "not valid base64"), ("YQ==\n", "not valid base64"), ("YQ===", "not valid"),
    ("=YWJj", "not valid base64"), ("Y", "truncated"), ("é", "not valid base64"),
])
def test_refused_forms(text: str, message: str) -> None:
    with pytest.raises(E, match=message):
        encoding.b64decode(text, "f", E)
    with pytest.raises(E, match="must be a base64 string"):
        encoding.b64decode(b"YQ==", "f", E)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_= \n."


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=_ALPHABET, max_size=24))
def test_the_fast_path_agrees_with_the_lenient_reader(text: str) -> None:
    # What the C fast path accepts, the lenient (slow) reader accepts with the same bytes;
    # everything else goes to the lenient reader anyway.
    try:
        slow = encoding._b64decode_lenient(text, "f", E)
    except E:
        slow = None
    try:
        fast = encoding.b64decode(text, "f", E)
    except E:
        fast = None
    assert fast == slow
