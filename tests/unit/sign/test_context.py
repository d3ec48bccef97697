"""Choosing the services of a signing config, as sigstore-python chooses them."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from sealtrail.errors import ConfigInvalidError, TrustRootMalformedError, UsageError
from sealtrail.sign.context import SigningContext
from tests.fakes.instance import FakeInstance

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
OPEN = {"start": "2020-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def root() -> dict[str, Any]:
    return FakeInstance().trusted_root_json()


def service(url: str, version: int = 1, operator: str = "a", valid: dict[str, str] = OPEN) -> dict[str, Any]:
    return {"url": url, "majorApiVersion": version, "validFor": valid, "operator": operator}


def config(**overrides: Any) -> dict[str, Any]:
    base = {
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [service("https://ca.test")],
        "oidcUrls": [service("https://oidc.test")],
        "rekorTlogUrls": [service("https://rekor.test", 1), service("https://log2.test", 2)],
        "tsaUrls": [service("https://tsa.test/api/v1/timestamp")],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }
    base.update(overrides)
    return base


def context(root: dict[str, Any], signing: dict[str, Any], version: int | None = None) -> SigningContext:
    document = {"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": root, "signingConfig": signing}
    return SigningContext.from_trust_config(json.dumps(document), version, now=NOW)


def test_highest_version_by_default_and_a_forced_version(root: dict[str, Any]) -> None:
    chosen = context(root, config())
    assert (chosen.rekor_url, chosen.rekor_version) == ("https://log2.test", 2)
    assert chosen.ca_url == "https://ca.test" and chosen.oidc_url == "https://oidc.test"
    assert chosen.tsa_urls == ("https://tsa.test/api/v1/timestamp",)
    assert context(root, config(), 1).rekor_url == "https://rekor.test"


def test_services_outside_their_window_or_version_are_skipped(root: dict[str, Any]) -> None:
    logs = [service("https://future.test", 2, valid={"start": "2030-01-01T00:00:00Z"}),
            service("https://ended.test", 2, valid={"start": "2020-01-01T00:00:00Z",
                                                    "end": "2025-01-01T00:00:00Z"}),
            service("https://rekor3.test", 3),
            service("https://rekor.test", 1)]
    chosen = context(root, config(rekorTlogUrls=logs))
    assert (chosen.rekor_url, chosen.rekor_version) == ("https://rekor.test", 1)
    with pytest.raises(UsageError, match="no Rekor v2 log"):
        context(root, config(rekorTlogUrls=logs), 2)


def test_one_service_per_operator_and_selectors(root: dict[str, Any]) -> None:
    tsas = [service("https://t1.test", operator="a"), service("https://t2.test", operator="b"),
            service("https://t3.test", operator="b")]
    assert context(root, config(tsaUrls=tsas, tsaConfig={"selector": "ALL"})).tsa_urls == \
        ("https://t1.test", "https://t2.test")
    assert context(root, config(tsaUrls=tsas)).tsa_urls == ("https://t1.test",)
    assert context(root, config(tsaUrls=tsas, tsaConfig={"selector": "EXACT", "count": 2})
                   ).tsa_urls == ("https://t1.test", "https://t2.test")
    with pytest.raises(ConfigInvalidError, match="asks for 3"):
        context(root, config(tsaUrls=tsas, tsaConfig={"selector": "EXACT", "count": 3}))
    with pytest.raises(ConfigInvalidError, match="selector is unknown"):
        context(root, config(tsaConfig={"selector": "SOME"}))


def test_rekor_v2_needs_a_timestamp_authority(root: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="needs a timestamp authority"):
        context(root, config(tsaUrls=[]))
    assert context(root, config(tsaUrls=[]), 1).tsa_urls == ()


def test_no_ca_is_refused(root: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="no certificate authority"):
        context(root, config(caUrls=[service("https://ca.test", 2)]))


@pytest.mark.parametrize("mutate,error,message", [
    (lambda c: c.update(mediaType="application/vnd.dev.sigstore.signingconfig.v0.1+json"),
     ConfigInvalidError, "media type"),
    (lambda c: c["caUrls"][0].update(url="ftp://ca.test"), ConfigInvalidError, "http"),
    (lambda c: c["caUrls"][0].update(url="https://ca.test:port"), ConfigInvalidError, "not a URL"),
    (lambda c: c["caUrls"][0].update(url="https:///path"), ConfigInvalidError, "http"),
    (lambda c: c["caUrls"][0].update(majorApiVersion="1"), ConfigInvalidError, "integer"),
    (lambda c: c["caUrls"][0].pop("validFor"), ConfigInvalidError, "validFor"),
    (lambda c: c.update(caUrls={}), ConfigInvalidError, "caUrls"),
    # Strict parsing (ADR 0002): a misspelt or unknown field is refused, not skipped.
    (lambda c: c.update(tsaURLs=c.pop("tsaUrls")), ConfigInvalidError,
     r"signing config has unknown fields: 'tsaURLs'"),
    (lambda c: c["caUrls"][0].update(majorApiVersion=True), ConfigInvalidError, "integer"),
    (lambda c: c["caUrls"][0].update(major_api_version=1), ConfigInvalidError,
     r"caUrls\[0\] has unknown fields: 'major_api_version'"),
    (lambda c: c["tsaUrls"][0].update(operator=7), ConfigInvalidError, "operator"),
    (lambda c: c.update(tsaConfig={"selector": "EXACT", "count": True}), ConfigInvalidError,
     "positive count"),
    (lambda c: c.update(tsaConfig={"selector": "ALL", "cuont": 2}), ConfigInvalidError,
     "TSA configuration has unknown fields: 'cuont'"),
])
def test_malformed_signing_configs(root: dict[str, Any], mutate: Any, error: type, message: str) -> None:
    signing = copy.deepcopy(config())
    mutate(signing)
    with pytest.raises(error, match=message):
        context(root, signing)


def test_malformed_trust_config_documents(root: dict[str, Any]) -> None:
    with pytest.raises(ConfigInvalidError, match="media type"):
        SigningContext.from_trust_config(json.dumps({"mediaType": "x"}))
    with pytest.raises(ConfigInvalidError, match="not valid JSON"):
        SigningContext.from_trust_config(b"{")
    document = {"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": root, "signingConfig": config(), "signing_config": {}}
    with pytest.raises(ConfigInvalidError, match="unknown fields: 'signing_config'"):
        SigningContext.from_trust_config(json.dumps(document))
    with pytest.raises(TrustRootMalformedError):
        SigningContext.from_documents(b"{}", json.dumps(config()))
    with pytest.raises(UsageError, match="Rekor version"):
        SigningContext.from_documents(json.dumps(root), json.dumps(config()), 3)


def test_separate_documents(root: dict[str, Any]) -> None:
    chosen = SigningContext.from_documents(json.dumps(root), json.dumps(config()), 1, now=NOW)
    assert chosen.rekor_url == "https://rekor.test" and len(chosen.trusted_root.tlogs) == 2
