"""The one exception tree of sealtrail.

Every exception that sealtrail raises on purpose derives from :class:`Error`, and every
name ends in ``Error``. Each class carries a stable, machine-readable ``code`` that the CLI
prints in ``--json`` output; codes never change meaning once released.

Each class also carries the ``exit_code`` of a command that ends with it: the one mapping
from errors to exit statuses, which every command uses and prints in ``--json`` output.

- ``0``: success (no error);
- ``1`` (:data:`EXIT_VERIFICATION_FAILED`): well-formed input failed a check;
- ``2`` (:data:`EXIT_INPUT`): a usage or input error (flags, files, a token we refuse);
  retrying the same command will fail the same way;
- ``3`` (:data:`EXIT_SERVICE`): a service could not be reached or failed (a CA, TSA, log,
  TUF repository or CI token service), or a helper process died; retrying later may work.

::

    Error                                                   exit
    ├── UsageError                      USAGE               2 (bad flags or option values)
    ├── InputError                      INPUT_INVALID       2 (a file that cannot be read or parsed)
    │   ├── BundleMalformedError        BUNDLE_MALFORMED
    │   ├── TrustRootMalformedError     TRUST_ROOT_MALFORMED
    │   ├── KeyMalformedError           KEY_MALFORMED
    │   ├── LogEntryInvalidError        LOG_ENTRY_INVALID   (a log entry request we refuse)
    │   ├── CertificateRequestInvalidError  CERTIFICATE_REQUEST_INVALID (CSR, proof of possession)
    │   ├── TimestampRequestInvalidError    TIMESTAMP_REQUEST_INVALID
    │   └── ConfigInvalidError          CONFIG_INVALID      (a configuration file)
    ├── TokenInvalidError               TOKEN_INVALID       2 (an OIDC identity token we refuse,
    │                                                          or none found)
    ├── TrustUpdateError                TRUST_UPDATE_FAILED 3 (TUF refresh of a trust root)
    ├── ServiceUnavailableError         SERVICE_UNAVAILABLE 3 (a CA, TSA, log or token service failed)
    ├── LogError                        LOG_ERROR           3 (the transparency log service)
    │   ├── LogFrozenError              LOG_FROZEN
    │   ├── LogEntryNotFoundError       LOG_ENTRY_NOT_FOUND
    │   ├── LogOverloadedError          LOG_OVERLOADED
    │   └── LogStorageError             LOG_STORAGE
    └── VerificationError               VERIFICATION_FAILED 1 (the input is well-formed but untrusted)
        ├── SignatureInvalidError       SIGNATURE_INVALID
        ├── DigestMismatchError         DIGEST_MISMATCH
        ├── CertChainInvalidError       CERT_CHAIN_INVALID
        ├── CertProfileInvalidError     CERT_PROFILE_INVALID
        ├── SCTInvalidError             SCT_INVALID
        ├── TlogInclusionInvalidError   TLOG_INCLUSION_INVALID
        ├── CheckpointInvalidError      CHECKPOINT_INVALID
        ├── SETInvalidError             SET_INVALID
        ├── TlogEntryMismatchError      TLOG_ENTRY_MISMATCH
        ├── TlogKeyUnknownError         TLOG_KEY_UNKNOWN
        ├── TimestampInvalidError       TIMESTAMP_INVALID
        ├── NoVerifiedTimeError         NO_VERIFIED_TIME
        ├── IdentityMismatchError       IDENTITY_MISMATCH
        ├── IssuerMismatchError         ISSUER_MISMATCH
        ├── ExtensionMismatchError      EXTENSION_MISMATCH
        ├── KeyMismatchError            KEY_MISMATCH
        └── SubjectMismatchError        SUBJECT_MISMATCH

Only the CLI turns errors into text, through :meth:`Error.diagnostics`. An ``OSError`` that
no code turned into an :class:`Error` gets its class from :func:`from_os_error`, so it too
ends in one line with a documented exit status (never a traceback and exit 1, which would
read as "verification failed").
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BundleMalformedError",
    "CertChainInvalidError",
    "CertProfileInvalidError",
    "CertificateRequestInvalidError",
    "CheckpointInvalidError",
    "ConfigInvalidError",
    "DigestMismatchError",
    "Error",
    "ExtensionMismatchError",
    "IdentityMismatchError",
    "InputError",
    "IssuerMismatchError",
    "KeyMalformedError",
    "KeyMismatchError",
    "LogEntryInvalidError",
    "LogEntryNotFoundError",
    "LogError",
    "LogFrozenError",
    "LogOverloadedError",
    "LogStorageError",
    "NoVerifiedTimeError",
    "SCTInvalidError",
    "SETInvalidError",
    "ServiceUnavailableError",
    "SignatureInvalidError",
    "SubjectMismatchError",
    "TimestampInvalidError",
    "TimestampRequestInvalidError",
    "TlogEntryMismatchError",
    "TlogEntryNotFoundError",
    "TlogInclusionInvalidError",
    "TlogKeyUnknownError",
    "TokenInvalidError",
    "TrustRootMalformedError",
    "TrustUpdateError",
    "UsageError",
    "VerificationError",
]

#: Exit statuses (0 is success): see the module docstring. Not in ``__all__``, which lists
#: the error classes only.
EXIT_VERIFICATION_FAILED = 1
EXIT_INPUT = 2
EXIT_SERVICE = 3

# The longest value we echo back in a message: inputs are untrusted and may be huge.
_MAX_VALUE_CHARS = 200


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


class Error(Exception):
    """Root of every sealtrail error.

    ``message`` says what went wrong; ``expected`` and ``actual``, when given, are the
    evidence (got/expected) that the message is about.
    """

    code: str = "ERROR"
    #: The exit status of a command that ends with this error (subclasses set theirs).
    exit_code: int = EXIT_INPUT

    def __init__(self, message: str, *, expected: Any = None, actual: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.actual = actual

    def diagnostics(self) -> str:
        """One line of human text: the message plus got/expected evidence."""
        text = self.message.replace("\n", " ")
        parts = []
        if self.actual is not None:
            parts.append(f"got {_short(self.actual)}")
        if self.expected is not None:
            parts.append(f"expected {_short(self.expected)}")
        if parts:
            text += f" ({', '.join(parts)})"
        return text

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description: code, exit status, message and evidence."""
        out: dict[str, Any] = {"code": self.code, "exit_code": self.exit_code,
                               "message": self.diagnostics()}
        if self.expected is not None:
            out["expected"] = _short(self.expected)
        if self.actual is not None:
            out["actual"] = _short(self.actual)
        return out


class UsageError(Error):
    """The command line or API was called with invalid options."""

    code = "USAGE"


class InputError(Error):
    """An input could not be read or parsed."""

    code = "INPUT_INVALID"


class BundleMalformedError(InputError):
    """A Sigstore bundle is not well-formed (JSON, schema, media type, encodings)."""

    code = "BUNDLE_MALFORMED"


class TrustRootMalformedError(InputError):
    """A trusted_root.json is not well-formed."""

    code = "TRUST_ROOT_MALFORMED"


class KeyMalformedError(InputError):
    """A public key could not be parsed or is of an unsupported type."""

    code = "KEY_MALFORMED"


class LogEntryInvalidError(InputError):
    """A request to add a log entry is malformed, unsupported, or its signature is invalid."""

    code = "LOG_ENTRY_INVALID"


class CertificateRequestInvalidError(InputError):
    """A certificate request is malformed, its proof of possession fails, or its key is weak."""

    code = "CERTIFICATE_REQUEST_INVALID"


class TimestampRequestInvalidError(InputError):
    """An RFC 3161 timestamp request is malformed or asks for an unsupported hash."""

    code = "TIMESTAMP_REQUEST_INVALID"


class ConfigInvalidError(InputError):
    """An instance's configuration file is missing, malformed or inconsistent."""

    code = "CONFIG_INVALID"


class TokenInvalidError(Error):
    """An OIDC identity token is expired, not yet valid, for another audience or issuer,
    badly signed, or lacks a required claim."""

    code = "TOKEN_INVALID"


class TrustUpdateError(Error):
    """Refreshing a trust root through TUF failed (tampered or expired metadata, no network)."""

    code = "TRUST_UPDATE_FAILED"
    exit_code = EXIT_SERVICE


class ServiceUnavailableError(Error):
    """A service the signer depends on (CA, TSA, log, token endpoint) could not be reached,
    timed out, or failed; nothing was signed with its answer."""

    code = "SERVICE_UNAVAILABLE"
    exit_code = EXIT_SERVICE


class LogError(Error):
    """The transparency log cannot do what was asked."""

    code = "LOG_ERROR"
    exit_code = EXIT_SERVICE


class LogFrozenError(LogError):
    """The log is frozen (read-only, e.g. after a shard rollover) and accepts no entries."""

    code = "LOG_FROZEN"


class LogEntryNotFoundError(LogError):
    """No entry has the requested index, UUID or content."""

    code = "LOG_ENTRY_NOT_FOUND"


class LogOverloadedError(LogError):
    """Too many entries are waiting to be sequenced; the client should retry later."""

    code = "LOG_OVERLOADED"


class LogStorageError(LogError):
    """The log's storage failed (disk, database); nothing was acknowledged."""

    code = "LOG_STORAGE"


class VerificationError(Error):
    """Well-formed input that failed a verification check."""

    code = "VERIFICATION_FAILED"
    exit_code = EXIT_VERIFICATION_FAILED


class SignatureInvalidError(VerificationError):
    """The artifact or envelope signature does not verify."""

    code = "SIGNATURE_INVALID"


class DigestMismatchError(VerificationError):
    """The artifact's digest differs from the digest that was signed."""

    code = "DIGEST_MISMATCH"


class CertChainInvalidError(VerificationError):
    """The signing certificate does not chain to a trusted CA at the verified time."""

    code = "CERT_CHAIN_INVALID"


class CertProfileInvalidError(VerificationError):
    """The signing certificate lacks a required property (key usage, EKU, SAN)."""

    code = "CERT_PROFILE_INVALID"


class SCTInvalidError(VerificationError):
    """The embedded signed certificate timestamp is missing or does not verify."""

    code = "SCT_INVALID"


class TlogInclusionInvalidError(VerificationError):
    """The Merkle inclusion proof does not lead to the checkpoint's root."""

    code = "TLOG_INCLUSION_INVALID"


class CheckpointInvalidError(VerificationError):
    """The checkpoint (signed note) is malformed or not signed by the log."""

    code = "CHECKPOINT_INVALID"


class SETInvalidError(VerificationError):
    """The signed entry timestamp (inclusion promise) does not verify."""

    code = "SET_INVALID"


class TlogEntryMismatchError(VerificationError):
    """The transparency log entry describes a different signature, key or artifact."""

    code = "TLOG_ENTRY_MISMATCH"


class TlogEntryNotFoundError(VerificationError):
    """No transparency log that was searched holds an entry for a detached signature and
    certificate: the pair was never logged, or in a log that was not searched."""

    code = "TLOG_ENTRY_NOT_FOUND"


class TlogKeyUnknownError(VerificationError):
    """The log entry names a log that is not in the trusted root (or not valid then)."""

    code = "TLOG_KEY_UNKNOWN"


class TimestampInvalidError(VerificationError):
    """A timestamp (RFC 3161 or integrated time) is not acceptable."""

    code = "TIMESTAMP_INVALID"


class NoVerifiedTimeError(VerificationError):
    """No trustworthy time could be established for the signature."""

    code = "NO_VERIFIED_TIME"


class IdentityMismatchError(VerificationError):
    """The certificate's subject alternative name is not the expected identity."""

    code = "IDENTITY_MISMATCH"


class IssuerMismatchError(VerificationError):
    """The certificate's OIDC issuer is not the expected issuer."""

    code = "ISSUER_MISMATCH"


class ExtensionMismatchError(VerificationError):
    """A Fulcio certificate extension (repository, ref, sha...) is not the expected value."""

    code = "EXTENSION_MISMATCH"


class KeyMismatchError(VerificationError):
    """The bundle was not signed by the expected public key."""

    code = "KEY_MISMATCH"


class SubjectMismatchError(VerificationError):
    """No in-toto statement subject carries the artifact's digest."""

    code = "SUBJECT_MISMATCH"


def from_os_error(exc: OSError) -> Error:
    """The :class:`Error` (and so the exit status) for an ``OSError`` nothing else caught.

    A refused, reset or timed-out connection is a service that could not be reached
    (:class:`ServiceUnavailableError`, exit 3); any other OS error is about a local path or
    resource the user named (:class:`InputError`, exit 2), such as a directory that cannot
    be created."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f"{exc.filename}: " if exc.filename else ""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ServiceUnavailableError(f"a connection failed: {where}{reason}")
    return InputError(f"{where}{reason}")
