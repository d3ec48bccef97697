"""Issue 13 E: a non-ASCII digit or a lone UTF-16 surrogate in a bundle is one parse error.

Before, ``"logIndex": "٧٩"`` was read as 79 and a ``\\ud800`` escape raised
UnicodeEncodeError (a traceback) in the middle of verification or while printing the error.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from sealtrail.errors import BundleMalformedError, TrustRootMalformedError
from sealtrail.models.bundle import Bundle
from sealtrail.models.intoto import Statement
from sealtrail.models.rekor import parse_entry_body
from sealtrail.models.trusted_root import TrustedRoot
from tests.samples import CASES

GOOD = json.loads((CASES / "happy-path-v0.3" / "bundle.sigstore.json").read_text())


def _entry(b: dict[str, Any]) -> dict[str, Any]:
    return b["verificationMaterial"]["tlogEntries"][0]  # type: ignore[no-any-return]


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "arabic-indic logIndex": lambda b: _entry(b).__setitem__("logIndex", "\u0667\u0669"),
    "fullwidth integratedTime": lambda b: _entry(b).__setitem__("integratedTime", "\uff11\uff17"),
    "devanagari treeSize": lambda b: _entry(b)["inclusionProof"].__setitem__("treeSize", "\u0967"),
    "surrogate kind": lambda b: _entry(b)["kindVersion"].__setitem__("kind", "\ud800"),
    "surrogate checkpoint": lambda b: _entry(b)["inclusionProof"]["checkpoint"].__setitem__(
        "envelope", "rekor\udfff"),
    "surrogate media type": lambda b: b.__setitem__("mediaType", "\udbff"),
    "surrogate key": lambda b: b.__setitem__("\ud800", 1),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_hostile_text_is_one_bundle_error(name: str) -> None:
    bundle = copy.deepcopy(GOOD)
    MUTATIONS[name](bundle)
    text = json.dumps(bundle)  # ensure_ascii: the surrogate travels as a \\u escape
    with pytest.raises(BundleMalformedError) as info:
        Bundle.from_json(text)
    info.value.diagnostics().encode("utf-8")  # printable: no surrogate in the message
    with pytest.raises(BundleMalformedError):
        Bundle.from_dict(bundle)


def test_paired_surrogates_are_text() -> None:
    bundle = copy.deepcopy(GOOD)
    _entry(bundle)["inclusionProof"]["checkpoint"]["envelope"] += "\U0001f600"
    Bundle.from_json(json.dumps(bundle))  # parses (the checkpoint check fails later)


def test_entry_body_and_statement_refuse_lone_surrogates() -> None:
    with pytest.raises(BundleMalformedError, match="surrogate"):
        parse_entry_body(b'{"kind":"hashedrekord","apiVersion":"0.0.1","spec":{"x":"\\ud800"}}',
                         "hashedrekord", "0.0.1")
    with pytest.raises(BundleMalformedError, match="surrogate"):
        Statement.from_payload(b'{"_type":"https://in-toto.io/Statement/v1","subject":'
                               b'[{"name":"\\udc00","digest":{"sha256":"00"}}]}')


def test_trusted_root_refuses_lone_surrogates() -> None:
    with pytest.raises(TrustRootMalformedError, match="surrogate"):
        TrustedRoot.from_json('{"mediaType":"\\ud800"}')
