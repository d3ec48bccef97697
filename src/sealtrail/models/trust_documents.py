"""Builders for the trust documents an instance publishes: trusted_root.json (v0.1),
signing_config.json (v0.2) and the ClientTrustConfig that bundles both.

SPEC: protobuf-specs sigstore_trustroot.proto (TrustedRoot, SigningConfig, ClientTrustConfig);
sigstore-wire.md §6. Pure functions: public material in, JSON-ready dicts out.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any, NamedTuple, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealtrail.models.trusted_root import TRUSTED_ROOT_MEDIA_TYPE

__all__ = [
    "CLIENT_TRUST_CONFIG_MEDIA_TYPE",
    "SIGNING_CONFIG_MEDIA_TYPE",
    "ServiceUrl",
    "build_client_trust_config",
    "build_signing_config",
    "build_trusted_root",
    "certificate_authority_entry",
    "rfc3339",
    "transparency_log_entry",
]

SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


def rfc3339(when: datetime) -> str:
    """UTC RFC 3339 with a Z, as protobuf's Timestamp JSON mapping writes it."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _validity(start: datetime, end: datetime | None) -> dict[str, str]:
    window = {"start": rfc3339(start)}
    if end is not None:
        window["end"] = rfc3339(end)
    return window


def certificate_authority_entry(chain: Sequence[x509.Certificate], uri: str, start: datetime,
                                end: datetime | None = None) -> dict[str, Any]:
    """A ``certificateAuthorities`` / ``timestampAuthorities`` item.

    ``chain`` is in the order the trusted root wants: for a CA intermediates -> root, for a
    TSA leaf -> root. The subject names the last (root) certificate, as Sigstore's roots do.
    """
    root = chain[-1]

    def attribute(oid: x509.ObjectIdentifier) -> str:
        values = root.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return {
        "subject": {"organization": attribute(x509.NameOID.ORGANIZATION_NAME),
                    "commonName": attribute(x509.NameOID.COMMON_NAME)},
        "uri": uri,
        "certChain": {"certificates": [
            {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))} for cert in chain]},
        "validFor": _validity(start, end),
    }


def transparency_log_entry(base_url: str, spki_der: bytes, key_details: str, log_id: bytes,
                           start: datetime, end: datetime | None = None) -> dict[str, Any]:
    """A ``tlogs`` / ``ctlogs`` item."""
    return {
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": _b64(spki_der), "keyDetails": key_details,
                      "validFor": _validity(start, end)},
        "logId": {"keyId": _b64(log_id)},
    }


def build_trusted_root(*, certificate_authorities: Sequence[dict[str, Any]],
                       tlogs: Sequence[dict[str, Any]], ctlogs: Sequence[dict[str, Any]],
                       timestamp_authorities: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A trusted_root.json document (media type version 0.1)."""
    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": list(tlogs),
        "certificateAuthorities": list(certificate_authorities),
        "ctlogs": list(ctlogs),
        "timestampAuthorities": list(timestamp_authorities),
    }


class ServiceUrl(NamedTuple):
    """One service of a signing config."""

    url: str
    major_api_version: int
    start: datetime
    end: datetime | None = None

    def to_json(self, operator: str) -> dict[str, Any]:
        return {"url": self.url, "majorApiVersion": self.major_api_version,
                "validFor": _validity(self.start, self.end), "operator": operator}


def build_signing_config(*, operator: str, ca_urls: Sequence[ServiceUrl],
                         oidc_urls: Sequence[ServiceUrl], rekor_urls: Sequence[ServiceUrl],
                         tsa_urls: Sequence[ServiceUrl]) -> dict[str, Any]:
    """A signing_config.json (v0.2).

    SPEC: sigstore-wire.md §6: majorApiVersion is 1 for the CA (even on /api/v2), 1 or 2 for
    Rekor, 1 for the TSA; a TSA URL is the full endpoint. Newest services first.
    """
    def items(urls: Sequence[ServiceUrl]) -> list[dict[str, Any]]:
        ordered = sorted(urls, key=lambda u: (u.major_api_version, u.start), reverse=True)
        return [u.to_json(operator) for u in ordered]

    return {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": items(ca_urls),
        "oidcUrls": items(oidc_urls),
        "rekorTlogUrls": items(rekor_urls),
        "tsaUrls": items(tsa_urls),
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }


def build_client_trust_config(trusted_root: dict[str, Any], signing_config: dict[str, Any]) -> dict[str, Any]:
    """The ClientTrustConfig sigstore-python reads with ``--trust-config``."""
    return {"mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE, "trustedRoot": trusted_root,
            "signingConfig": signing_config}
