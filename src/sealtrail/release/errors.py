"""The errors and result codes of a release (stable: scripts and --json readers match on
them)."""

from __future__ import annotations

from sealtrail.errors import InputError

__all__ = ["ARTIFACT_EXTRA", "ARTIFACT_MISSING", "ARTIFACT_MODIFIED", "CHECKSUMS_MISSING",
           "ChecksumsMalformedError", "OTHER_IDENTITY", "PROVENANCE_MISSING"]

#: Listed in SHA256SUMS, absent from the directory.
ARTIFACT_MISSING = "ARTIFACT_MISSING"
#: In the directory but not in SHA256SUMS, or without its bundle (or a bundle of no artifact).
ARTIFACT_EXTRA = "ARTIFACT_EXTRA"
#: Its digest differs from SHA256SUMS or from what its bundle signs.
ARTIFACT_MODIFIED = "ARTIFACT_MODIFIED"
#: Its bundle verifies, but for another identity or issuer than the expected ones.
OTHER_IDENTITY = "SIGNED_BY_OTHER_IDENTITY"
#: The release has no SHA256SUMS (or no bundle of it).
CHECKSUMS_MISSING = "CHECKSUMS_MISSING"
#: Provenance was expected (--source-uri or --policy) and the release carries none.
PROVENANCE_MISSING = "PROVENANCE_MISSING"


class ChecksumsMalformedError(InputError):
    """A SHA256SUMS file that is not strictly ``sha256sum`` output for a flat release."""

    code = "CHECKSUMS_MALFORMED"
