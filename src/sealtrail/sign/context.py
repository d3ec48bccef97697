"""Where to sign: the services of a signing config and the trusted root to check them with.

:meth:`SigningContext.from_trust_config` reads a ClientTrustConfig (what ``sigstore
--trust-config`` reads, and what an instance publishes as ``trust/trust_config.json``);
:meth:`SigningContext.from_documents` reads a trusted root and a signing config given apart
(``sigstore-conformance sign-bundle --trusted-root --signing-config``).

Services are chosen as sigstore-python chooses them: only API versions sealtrail speaks,
only services whose ``validFor`` is open now, one service per operator (the highest version
it offers), then the config's selector (``ANY``: the first; ``EXACT``: ``count``; ``ALL``).
Entries are signed to the first transparency log selected and timestamped by every TSA
selected.

SPEC: protobuf-specs sigstore_trustroot.proto (SigningConfig v0.2, ServiceConfiguration,
ClientTrustConfig); sigstore-wire.md §6.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sealtrail._internal.clock import utcnow
from sealtrail._internal.encoding import reject_unknown, require_dict, require_list, require_str
from sealtrail.errors import ConfigInvalidError, TrustRootMalformedError, UsageError
from sealtrail.models.trust_documents import (
    CLIENT_TRUST_CONFIG_MEDIA_TYPE,
    SIGNING_CONFIG_MEDIA_TYPE,
)
from sealtrail.models.trusted_root import TrustedRoot, ValidityWindow

__all__ = ["Service", "SigningContext", "select_services"]

# API versions this client speaks. SPEC: sigstore-wire.md §6: Fulcio's majorApiVersion is 1
# (its path is /api/v2), Rekor 1 or 2, TSA 1, OIDC 1.
CA_VERSIONS = (1,)
REKOR_VERSIONS = (1, 2)
TSA_VERSIONS = (1,)
OIDC_VERSIONS = (1,)
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_SERVICES = 64

E = ConfigInvalidError

# The fields of each message (SPEC: protobuf-specs sigstore_trustroot.proto, in the JSON
# mapping's lowerCamelCase). Anything else is refused (ADR 0002): a misspelt or newer field
# would otherwise be skipped, and its services silently not used.
_TRUST_CONFIG_FIELDS = ("mediaType", "trustedRoot", "signingConfig")
_SIGNING_CONFIG_FIELDS = ("mediaType", "caUrls", "oidcUrls", "rekorTlogUrls", "rekorTlogConfig",
                          "tsaUrls", "tsaConfig")
_SERVICE_FIELDS = ("url", "majorApiVersion", "validFor", "operator")
_SELECTOR_FIELDS = ("selector", "count")


class Service(NamedTuple):
    """One service of a signing config."""

    url: str
    major_api_version: int
    validity: ValidityWindow
    operator: str


def _services(data: dict[str, Any], key: str) -> list[Service]:
    items = require_list(data.get(key, []), f"signing config {key}", E, max_items=MAX_SERVICES)
    out = []
    for i, item in enumerate(items):
        what = f"signing config {key}[{i}]"
        item = require_dict(item, what, E)
        reject_unknown(item, _SERVICE_FIELDS, what, E)
        url = require_str(item.get("url"), f"{what}.url", E)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            raise E(f"{what}.url is not a URL", actual=url) from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise E(f"{what}.url is not an http(s) URL", actual=url)
        version = item.get("majorApiVersion")
        if isinstance(version, bool) or not isinstance(version, int):
            raise E(f"{what}.majorApiVersion must be an integer", actual=version)
        try:
            validity = ValidityWindow.from_json(item.get("validFor"), f"{what}.validFor")
        except TrustRootMalformedError as exc:  # the parser is shared with the trusted root
            raise E(exc.message, expected=exc.expected, actual=exc.actual) from exc
        operator = item.get("operator", "")
        if not isinstance(operator, str):
            raise E(f"{what}.operator must be a string")
        out.append(Service(url.rstrip("/"), version, validity, operator))
    return out


def select_services(services: Sequence[Service], versions: Sequence[int],
                    config: dict[str, Any] | None, now: datetime, what: str) -> list[Service]:
    """The services to use: supported version, valid ``now``, one per operator (its highest
    version), then pruned by the ``ServiceConfiguration`` selector."""
    by_operator: dict[str, Service] = {}
    for service in services:
        if service.major_api_version not in versions or not service.validity.contains(now):
            continue
        best = by_operator.get(service.operator)
        if best is None or service.major_api_version > best.major_api_version:
            by_operator[service.operator] = service
    chosen = list(by_operator.values())
    if not config:  # absent or {}: no selection asked for
        return chosen
    reject_unknown(config, _SELECTOR_FIELDS, f"signing config {what} configuration", E)
    selector = config.get("selector", "ANY")
    if selector == "ALL":
        return chosen
    if selector == "ANY":
        return chosen[:1]
    if selector == "EXACT":
        count = config.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise E(f"signing config {what} selector EXACT needs a positive count", actual=count)
        if len(chosen) < count:
            raise E(f"signing config asks for {count} {what} services but offers {len(chosen)} "
                    "usable ones", actual=len(chosen), expected=count)
        return chosen[:count]
    raise E(f"signing config {what} selector is unknown", actual=selector,
            expected="ALL, ANY or EXACT")


class SigningContext(NamedTuple):
    """The trusted root plus the CA, TSAs and transparency log to sign with.

    Immutable; a NamedTuple like the package's other value objects.
    """

    trusted_root: TrustedRoot
    ca_url: str
    tsa_urls: tuple[str, ...]
    rekor_url: str
    rekor_version: int
    oidc_url: str | None = None

    @classmethod
    def from_trust_config(cls, client_trust_config_json: str | bytes,
                          rekor_version: int | None = None, *,
                          now: datetime | None = None) -> "SigningContext":
        """Build from a ClientTrustConfig JSON document.

        ``rekor_version`` (1 or 2) restricts the log to that API; by default the highest
        version the config offers is used. Raises :class:`ConfigInvalidError` /
        :class:`TrustRootMalformedError` for malformed documents and :class:`UsageError`
        when no usable log of the requested version exists.
        """
        data = _load(client_trust_config_json, "client trust config")
        reject_unknown(data, _TRUST_CONFIG_FIELDS, "client trust config", E)
        media_type = data.get("mediaType")
        if media_type != CLIENT_TRUST_CONFIG_MEDIA_TYPE:
            raise E("unsupported client trust config media type", actual=media_type,
                    expected=CLIENT_TRUST_CONFIG_MEDIA_TYPE)
        root = TrustedRoot.from_dict(data.get("trustedRoot"))
        signing = require_dict(data.get("signingConfig"), "client trust config signingConfig", E)
        return cls._from_parts(root, signing, rekor_version, now)

    @classmethod
    def from_documents(cls, trusted_root_json: str | bytes, signing_config_json: str | bytes,
                       rekor_version: int | None = None, *,
                       now: datetime | None = None) -> "SigningContext":
        """Build from a trusted_root.json and a signing_config.json (v0.2) given apart."""
        if len(trusted_root_json) > MAX_DOCUMENT_BYTES:
            raise TrustRootMalformedError("trusted root is too large")
        root = TrustedRoot.from_json(trusted_root_json)
        signing = _load(signing_config_json, "signing config")
        return cls._from_parts(root, signing, rekor_version, now)

    @classmethod
    def _from_parts(cls, root: TrustedRoot, signing: dict[str, Any], rekor_version: int | None,
                    now: datetime | None) -> "SigningContext":
        now = now or utcnow()
        reject_unknown(signing, _SIGNING_CONFIG_FIELDS, "signing config", E)
        media_type = signing.get("mediaType")
        if media_type != SIGNING_CONFIG_MEDIA_TYPE:
            raise E("unsupported signing config media type", actual=media_type,
                    expected=SIGNING_CONFIG_MEDIA_TYPE)
        if rekor_version is not None and rekor_version not in REKOR_VERSIONS:
            raise UsageError("unsupported Rekor version", actual=rekor_version, expected="1 or 2")

        def config(key: str) -> dict[str, Any] | None:
            value = signing.get(key)
            return None if value is None else require_dict(value, f"signing config {key}", E)

        versions = REKOR_VERSIONS if rekor_version is None else (rekor_version,)
        logs = select_services(_services(signing, "rekorTlogUrls"), versions,
                               config("rekorTlogConfig"), now, "transparency log")
        if not logs:
            wanted = f"Rekor v{rekor_version}" if rekor_version else "Rekor v1 or v2"
            raise UsageError(f"the signing config offers no {wanted} log that is valid now")
        cas = select_services(_services(signing, "caUrls"), CA_VERSIONS, None, now, "CA")
        if not cas:
            raise UsageError("the signing config offers no certificate authority that is "
                             "valid now")
        tsas = select_services(_services(signing, "tsaUrls"), TSA_VERSIONS, config("tsaConfig"),
                               now, "TSA")
        oidcs = select_services(_services(signing, "oidcUrls"), OIDC_VERSIONS, None, now, "OIDC")
        log = logs[0]
        if log.major_api_version == 2 and not tsas:
            # SPEC: sigstore-wire.md §4: a Rekor v2 entry has no SET, so only an RFC 3161
            # timestamp gives the bundle a verified time.
            raise UsageError("signing to a Rekor v2 log needs a timestamp authority, and the "
                             "signing config offers none that is valid now")
        return cls(trusted_root=root, ca_url=cas[0].url, tsa_urls=tuple(t.url for t in tsas),
                   rekor_url=log.url, rekor_version=log.major_api_version,
                   oidc_url=oidcs[0].url if oidcs else None)


def _load(text: str | bytes, what: str) -> dict[str, Any]:
    if len(text) > MAX_DOCUMENT_BYTES:
        raise E(f"{what} is too large", actual=len(text), expected=f"<= {MAX_DOCUMENT_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise E(f"{what} is not valid JSON: {exc}") from exc
    return require_dict(data, what, E)
