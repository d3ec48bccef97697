"""A whole release signed and verified at once (`sealtrail release sign` / `release verify`).

Layer L4 beside ``cli`` (docs/adr/0013-release-commands.md): a release combines the signer
(``sign``), many bundles verified in parallel (``batch``) and provenance (``provenance``),
three L3 siblings that may not import each other. The CLI parses flags and prints; this
package plans, classifies and writes. Pure parts: :mod:`.checksums` (SHA256SUMS),
:mod:`.layout` (which file is what), :mod:`.results` (the verdict per file),
:mod:`.instructions` (VERIFY.md).
"""
