"""in-toto Statements (the payload of attestation DSSE envelopes).

SPEC: in-toto attestation framework, Statement layer v0.1 and v1: ``_type``, ``subject[]``
(name + digest map), ``predicateType``, ``predicate``.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from sealtrail._internal.encoding import require_dict, require_list
from sealtrail.errors import BundleMalformedError
from sealtrail.models._json import reject_lone_surrogates

__all__ = ["INTOTO_PAYLOAD_TYPE", "Statement", "Subject"]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
MAX_SUBJECTS = 100_000

E = BundleMalformedError


class Subject(NamedTuple):
    """A statement subject: a name and its digests by algorithm (lowercase hex)."""

    name: str
    digest: dict[str, str]


class Statement(NamedTuple):
    """A parsed in-toto Statement."""

    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Any = None

    @classmethod
    def from_payload(cls, payload: bytes) -> "Statement":
        """Parse DSSE payload bytes as a Statement."""
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise E("in-toto statement is not valid JSON") from exc
        reject_lone_surrogates(data, "in-toto statement", E)
        data = require_dict(data, "in-toto statement", E)
        kind = data.get("_type")
        if kind not in STATEMENT_TYPES:
            raise E("unsupported in-toto statement type", actual=kind,
                    expected=" or ".join(STATEMENT_TYPES))
        subjects = []
        for i, item in enumerate(require_list(data.get("subject"), "statement.subject", E,
                                              max_items=MAX_SUBJECTS)):
            item = require_dict(item, f"statement.subject[{i}]", E)
            digest = require_dict(item.get("digest", {}), f"statement.subject[{i}].digest", E)
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items()):
                raise E(f"statement.subject[{i}].digest must map names to strings")
            name = item.get("name", "")
            if not isinstance(name, str):
                raise E(f"statement.subject[{i}].name must be a string")
            subjects.append(Subject(name, {k.lower(): v.lower() for k, v in digest.items()}))
        predicate_type = data.get("predicateType", "")
        if not isinstance(predicate_type, str):
            raise E("statement.predicateType must be a string")
        return cls(kind, tuple(subjects), predicate_type, data.get("predicate"))

    def subject_matching(self, digests: dict[str, bytes]) -> Subject | None:
        """The first subject carrying one of ``digests`` (hashlib name -> raw digest)."""
        for subject in self.subjects:
            for algorithm, value in digests.items():
                if subject.digest.get(algorithm) == value.hex():
                    return subject
        return None
