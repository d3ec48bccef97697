"""A whole self-hosted instance: create it (`sealtrail init`) and serve it (`sealtrail serve`).

See docs/instance.md for the directory layout and the URLs. This module only wires: keys and
certificates come from `sealtrail.ca`, `sealtrail.tsa`, `sealtrail.issuer`, `sealtrail.tufrepo`
and the log directory; the trust documents from `sealtrail.models.trust_documents`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import stat
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

from sealtrail._internal.encoding import (reject_unknown, require_bool, require_dict,
                                          require_json_int, require_list, require_str)
from sealtrail._internal.keyfiles import write_atomic, write_exclusive, write_private_key
from sealtrail.errors import ConfigInvalidError, LogStorageError, UsageError
from sealtrail.models import trust_documents as docs
from sealtrail.server.log_instance import LogDirectory
from sealtrail.server.storage import StorageConfig

if TYPE_CHECKING:  # imported where used, so that the CLI starts fast
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import BaseRoute

    from sealtrail.ca.authority import CertificateAuthority
    from sealtrail.ca.record import IssuanceRecord
    from sealtrail.ca.token_verifier import IssuerConfig
    from sealtrail.issuer import BuiltinIssuer
    from sealtrail.log.engine import LogEngine
    from sealtrail.log.storage import LogStorage
    from sealtrail.server.run import ServerLimits

__all__ = ["Instance", "InstanceConfig"]

CONFIG_NAME = "sealtrail.json"
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
TARGET_TRUSTED_ROOT = "trusted_root.json"
TARGET_SIGNING_CONFIG = "signing_config.v0.2.json"
# Environment variable holding the passphrase of encrypted private keys (never a flag: flags
# end up in shell history and process listings).
PASSPHRASE_ENV = "SEALTRAIL_PASSPHRASE"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class InstanceConfig:
    """sealtrail.json: where the instance is reachable and whom it trusts."""

    public_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    operator: str = "sealtrail"
    builtin_issuer: bool = False
    issuers: tuple[dict[str, Any], ...] = ()
    created: str = ""
    encrypted_keys: bool = False
    # CA key generations, oldest first: {"dir": sub-directory of keys/ and certs/ ("" for the
    # first), "start": RFC 3339, "end": RFC 3339 or ""}. The last one issues certificates.
    ca_generations: tuple[dict[str, str], ...] = ()
    # "server": bounds on client connections (docs/instance.md "Connection limits"); None
    # when the file has no such object (the defaults apply).
    server_limits: ServerLimits | None = None
    # "storage": PostgreSQL and a tile location (docs/instance.md "Storage"); None when the
    # file has no such object (everything under the instance directory).
    storage: StorageConfig | None = None

    @property
    def origin_host(self) -> str:
        return urlsplit(self.public_url).hostname or self.host

    @property
    def oidc_url(self) -> str:
        """The built-in issuer for email identities."""
        return self.public_url + "/oidc"

    @property
    def oidc_github_url(self) -> str:
        """The built-in issuer for GitHub-Actions-shaped workflow identities.

        Fulcio maps each issuer URL to one identity type, so the built-in issuer answers at two
        URLs (same key): one typed ``email``, one typed ``github-workflow``.
        """
        return self.public_url + "/oidc/github"

    @property
    def oidc_gitlab_url(self) -> str:
        """The built-in issuer for GitLab-CI-shaped pipeline identities (typed
        ``gitlab-pipeline``); it also plays the GitLab server, whose URL it is."""
        return self.public_url + "/oidc/gitlab"

    def to_json(self) -> dict[str, Any]:
        return {"publicUrl": self.public_url, "host": self.host, "port": self.port,
                "operator": self.operator, "builtinIssuer": self.builtin_issuer,
                "issuers": list(self.issuers), "created": self.created,
                "encryptedKeys": self.encrypted_keys,
                "caGenerations": [dict(g) for g in self.generations()],
                **({"server": self.server_limits.to_json()} if self.server_limits else {}),
                **({"storage": self.storage.to_json()} if self.storage else {})}

    def generations(self) -> tuple[dict[str, str], ...]:
        return self.ca_generations or ({"dir": "", "start": self.created, "end": ""},)

    @classmethod
    def from_json(cls, data: Any, source: str = CONFIG_NAME) -> "InstanceConfig":
        """Parse sealtrail.json strictly (ADR 0002); ``source`` names the file in errors.

        Every field has its JSON type (booleans are ``true``/``false``, never strings;
        integers are not booleans), unknown fields are refused (a typo would otherwise leave
        a setting at its default), and each issuer is checked as the CA will use it.
        Raises :class:`ConfigInvalidError` naming the file and the field."""
        E = ConfigInvalidError
        config = require_dict(data, source, E)
        reject_unknown(config, _CONFIG_FIELDS, source, E)
        if "publicUrl" not in config:
            raise E(f"{source} has no publicUrl")
        public_url = _url(config["publicUrl"], f"{source}: publicUrl")
        issuers = []
        for number, item in enumerate(require_list(config.get("issuers", []),
                                                   f"{source}: issuers", E)):
            issuers.append(_issuer(item, f"{source}: issuers[{number}]"))
        generations = tuple(
            _generation(item, f"{source}: caGenerations[{number}]")
            for number, item in enumerate(require_list(config.get("caGenerations", []),
                                                       f"{source}: caGenerations", E)))
        if "created" not in config:
            raise E(f"{source} has no created time")
        created = _time(config["created"], f"{source}: created")
        return cls(public_url=public_url,
                   host=_text(config.get("host", "127.0.0.1"), f"{source}: host", empty=False),
                   port=require_json_int(config.get("port", 8080), f"{source}: port", E,
                                         maximum=65535),
                   operator=_text(config.get("operator", "sealtrail"), f"{source}: operator",
                                  empty=False),
                   builtin_issuer=require_bool(config.get("builtinIssuer", False),
                                               f"{source}: builtinIssuer", E),
                   issuers=tuple(issuers), created=created,
                   encrypted_keys=require_bool(config.get("encryptedKeys", False),
                                               f"{source}: encryptedKeys", E),
                   ca_generations=generations,
                   server_limits=_server_limits(config, source),
                   storage=(StorageConfig.from_json(config["storage"], f"{source}: storage")
                            if "storage" in config else None))


# The fields of sealtrail.json (InstanceConfig.to_json writes all of them).
_CONFIG_FIELDS = ("publicUrl", "host", "port", "operator", "builtinIssuer", "issuers",
                  "created", "encryptedKeys", "caGenerations", "server", "storage")
_GENERATION_FIELDS = ("dir", "start", "end")


def _server_limits(config: dict[str, Any], source: str) -> ServerLimits | None:
    if "server" not in config:
        return None
    from sealtrail.server.run import ServerLimits

    return ServerLimits.from_json(config["server"], f"{source}: server")


def _text(value: Any, what: str, *, empty: bool = True) -> str:
    text = require_str(value, what, ConfigInvalidError)
    if not empty and not text:
        raise ConfigInvalidError(f"{what} must not be empty")
    return text


def _time(value: Any, what: str) -> str:
    """A time as sealtrail.json holds it (what :func:`_parse_time` reads back)."""
    text = _text(value, what, empty=False)
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ConfigInvalidError(f"{what} is not a time like 2026-01-31T12:00:00Z",
                                 actual=text) from None
    return text


def _url(value: Any, what: str) -> str:
    url = _text(value, what, empty=False).rstrip("/")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigInvalidError(f"{what} is not a URL", actual=url) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigInvalidError(f"{what} must be an http(s) URL", actual=url)
    return url


def _issuer(item: Any, what: str) -> dict[str, Any]:
    """One trusted issuer, checked now as the CA will read it (token_verifier's parser):
    a bad one fails at start-up, naming its place in the file."""
    from sealtrail.ca.token_verifier import IssuerConfig

    try:
        IssuerConfig.from_dict(item)
    except ConfigInvalidError as exc:
        raise ConfigInvalidError(f"{what}: {exc.message}", expected=exc.expected,
                                 actual=exc.actual) from None
    return dict(item)


def _generation(item: Any, what: str) -> dict[str, str]:
    generation = require_dict(item, what, ConfigInvalidError)
    reject_unknown(generation, _GENERATION_FIELDS, what, ConfigInvalidError)
    if "start" not in generation:
        raise ConfigInvalidError(f"{what} has no start")
    end = _text(generation.get("end", ""), f"{what}.end")
    out = {"dir": _text(generation.get("dir", ""), f"{what}.dir"),
           "start": _time(generation["start"], f"{what}.start"),
           "end": _time(end, f"{what}.end") if end else ""}
    # The directory names a sub-directory of keys/ and certs/: one plain name, never a path.
    if out["dir"] and (out["dir"] in (".", "..") or not out["dir"].replace("-", "").replace(
            "_", "").isalnum()):
        raise ConfigInvalidError(f"{what}.dir must be a plain directory name",
                                 actual=out["dir"])
    return out


class Instance:
    """An instance directory."""

    def __init__(self, directory: str, *, passphrase: bytes | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self._passphrase = passphrase

    # -- paths ---------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.directory, *parts)

    @property
    def keys_dir(self) -> str:
        return self.path("keys")

    @property
    def certs_dir(self) -> str:
        return self.path("certs")

    @property
    def logs(self) -> LogDirectory:
        """The instance's logs, on the storage sealtrail.json names (embedded until `init`
        has written the file)."""
        exists = os.path.exists(self.path(CONFIG_NAME))
        return LogDirectory(self.path("logs"), storage=self.config().storage if exists else None)

    def config(self) -> InstanceConfig:
        try:
            with open(self.path(CONFIG_NAME), "rb") as handle:
                data = json.loads(handle.read(1024 * 1024))
        except OSError as exc:
            raise ConfigInvalidError(f"{self.directory} is not a sealtrail instance "
                                     f"(cannot read {CONFIG_NAME}: {exc.strerror})") from exc
        except ValueError as exc:
            raise ConfigInvalidError(f"{self.path(CONFIG_NAME)} is not valid JSON") from exc
        return InstanceConfig.from_json(data, self.path(CONFIG_NAME))

    def passphrase(self) -> bytes | None:
        if self._passphrase is not None:
            return self._passphrase
        if self.config().encrypted_keys:
            value = os.environ.get(PASSPHRASE_ENV)
            if not value:
                raise UsageError(f"the instance's keys are encrypted: set {PASSPHRASE_ENV}")
            return value.encode()
        return None

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def init(cls, directory: str, *, public_url: str | None = None, host: str = "127.0.0.1",
             port: int = 8080, builtin_issuer: bool = False, github_actions: bool = True,
             passphrase: bytes | None = None, operator: str = "sealtrail",
             storage: StorageConfig | None = None) -> "Instance":
        """Create every key, certificate, log, trust document and the TUF repository.

        With ``storage`` (PostgreSQL and a tile location, docs/instance.md "Storage") the
        database is reached and its schemas created first, so a database that cannot be
        reached (:class:`ServiceUnavailableError` or :class:`LogStorageError`, exit 3) or
        already holds an instance's data (:class:`UsageError`) leaves nothing behind."""
        from sealtrail.ca.keys import create_ca, create_ct_key, save_ct_key
        from sealtrail.issuer import create_issuer_key, create_token_secret
        from sealtrail.tufrepo import RepoKeys, TrustRepository
        from sealtrail.tsa.keys import create_tsa

        instance = cls(directory, passphrase=passphrase)
        if os.path.exists(instance.path(CONFIG_NAME)):
            raise UsageError(f"{instance.directory} already holds an instance")
        if port <= 0 or port > 65535:
            raise UsageError("the instance needs a fixed port: its URLs go into the trust root",
                             actual=port)
        public_url = (public_url or f"http://{host}:{port}").rstrip("/")
        if storage is not None:
            _prepare_storage(storage, instance)
        issuers: list[dict[str, Any]] = []
        if github_actions:
            issuers.append({"url": GITHUB_ACTIONS_ISSUER, "type": "github-workflow"})
        config = InstanceConfig(public_url=public_url, host=host, port=port, operator=operator,
                                builtin_issuer=builtin_issuer, issuers=tuple(issuers),
                                created=docs.rfc3339(_utcnow()), encrypted_keys=passphrase is not None,
                                storage=storage)
        # Exact modes whatever the umask (`init` under umask 000 must not make anything others
        # can write): keys/ is the owner's alone, the rest is readable by all.
        _make_dir(instance.directory, 0o755)
        _make_dir(instance.keys_dir, 0o700)
        _make_dir(instance.certs_dir, 0o755)
        create_ca(operator, f"{operator}-ca").save(instance.keys_dir, instance.certs_dir,
                                                   passphrase=passphrase)
        save_ct_key(instance.keys_dir, create_ct_key(), passphrase=passphrase)
        create_tsa(operator, f"{operator}-tsa").save(instance.keys_dir, instance.certs_dir,
                                                     passphrase=passphrase)
        write_private_key(instance.path("keys", "oidc.pem"), create_issuer_key(), passphrase=passphrase)
        write_exclusive(instance.path("keys", "token-secret"), create_token_secret(), 0o600)
        instance.logs.create(config.origin_host, passphrase=passphrase)
        _write_json(instance.path(CONFIG_NAME), config.to_json())
        trusted_root, signing_config = instance._write_trust_documents(config)
        repo_keys = RepoKeys.generate()
        repo_keys.save(instance.path("keys", "tuf"), password=passphrase)
        TrustRepository.create(instance.path("tuf"), repo_keys, {
            TARGET_TRUSTED_ROOT: _json_bytes(trusted_root),
            TARGET_SIGNING_CONFIG: _json_bytes(signing_config)})
        return instance

    # -- trust documents -----------------------------------------------------------------
    def trust_documents(self, config: InstanceConfig | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Build trusted_root.json and signing_config.v0.2.json from the instance's public material."""
        from sealtrail.ca.ctlog import CTLog
        from sealtrail.ca.keys import load_ca, load_ct_key
        from sealtrail.tsa.keys import load_tsa

        config = config or self.config()
        passphrase = self.passphrase()
        created = _parse_time(config.created)
        authorities = []
        for generation in config.generations():
            material = load_ca(self.path("keys", generation["dir"]),
                               self.path("certs", generation["dir"]), passphrase=passphrase)
            end = _parse_time(generation["end"]) if generation["end"] else None
            authorities.append(docs.certificate_authority_entry(
                list(material.chain), config.public_url, _parse_time(generation["start"]), end))
        tsa = load_tsa(self.keys_dir, self.certs_dir, passphrase=passphrase)
        ct = CTLog(load_ct_key(self.keys_dir, passphrase=passphrase))
        base = config.public_url
        trusted_root = docs.build_trusted_root(
            certificate_authorities=authorities,
            tlogs=self.logs.trusted_root_tlogs(base, start=docs.rfc3339(created)),
            ctlogs=[docs.transparency_log_entry(base + "/ct", ct.public_key_der,
                                                "PKIX_ECDSA_P256_SHA_256", ct.log_id, created)],
            timestamp_authorities=[docs.certificate_authority_entry(
                list(tsa.chain), base + "/api/v1/timestamp", created)],
        )
        rekor_urls = [docs.ServiceUrl(base if spec.api_version == 1 else f"{base}/logs/{spec.name}",
                                      spec.api_version, created)
                      for spec in self.logs.specs() if not spec.frozen]
        signing_config = docs.build_signing_config(
            operator=config.operator,
            ca_urls=[docs.ServiceUrl(base, 1, created)],
            oidc_urls=[docs.ServiceUrl(config.oidc_url, 1, created)] if config.builtin_issuer else [],
            rekor_urls=rekor_urls,
            tsa_urls=[docs.ServiceUrl(base + "/api/v1/timestamp", 1, created)],
        )
        return trusted_root, signing_config

    def active_ca_dirs(self) -> tuple[str, str]:
        """The keys and certs directories of the CA generation that issues certificates."""
        generation = self.config().generations()[-1]
        return self.path("keys", generation["dir"]), self.path("certs", generation["dir"])

    def rotate_ca(self) -> int:
        """Start a new CA key generation; the old one stays trusted for what it issued.

        The old CA's ``validFor`` ends now and the new one's starts now, in the trusted root
        published through TUF: bundles signed before still verify.
        """
        with self._not_served("rotate the CA"):
            return self._rotate_ca()

    def _rotate_ca(self) -> int:
        from sealtrail.ca.keys import create_ca

        config = self.config()
        generations = [dict(g) for g in config.generations()]
        number = len(generations) + 1
        subdir = f"ca-{number}"
        now = docs.rfc3339(_utcnow())
        keys_dir, certs_dir = self.path("keys", subdir), self.path("certs", subdir)
        _make_dir(keys_dir, 0o700)
        _make_dir(certs_dir, 0o755)
        create_ca(config.operator, f"{config.operator}-ca-{number}").save(
            keys_dir, certs_dir, passphrase=self.passphrase())
        generations[-1]["end"] = now
        generations.append({"dir": subdir, "start": now, "end": ""})
        _write_json(self.path(CONFIG_NAME),
                    dataclasses.replace(config, ca_generations=tuple(generations)).to_json())
        return self.publish_trust()

    @contextlib.contextmanager
    def _not_served(self, action: str) -> Iterator[None]:
        """Hold every log's process lock for the duration of ``action``.

        A running `serve` holds these locks (the log storage takes them at open), which is
        how `rotate log` is refused while the instance is served; `rotate ca` needs the
        same refusal, because a running server keeps signing with the CA key it loaded, so
        a trust root published under it would not match the certificates it issues.
        Holding the locks until the end also keeps a server from starting half-way.
        Raises :class:`LogStorageError` (the code `rotate log` gives) when one is held.

        On PostgreSQL there are no such locks: every serving process holds a shared advisory
        lock (taken by its CA issuance record, sealtrail.ca.record), and this takes it
        exclusively for the duration instead.
        """
        from sealtrail.log.storage import LogStorage

        configured = self.config().storage
        if configured is not None:
            from sealtrail.ca.record import held_exclusively

            with held_exclusively(configured.database) as free:
                if not free:
                    raise LogStorageError(
                        f"cannot {action} of {self.directory} while it is served (a server "
                        "holds the PostgreSQL serving lock, the instance is in use): stop "
                        "every `sealtrail serve` first")
                yield
            return
        held: list[LogStorage] = []
        try:
            for spec in self.logs.specs():
                try:
                    held.append(LogStorage.embedded(os.path.join(self.logs.directory,
                                                                 spec.name)))
                except LogStorageError as exc:
                    raise LogStorageError(
                        f"cannot {action} of {self.directory} while it is served "
                        f"(log {spec.name} is in use): stop `sealtrail serve` first",
                        actual=exc.actual) from exc
            yield
        finally:
            for storage in held:
                storage.close()

    def rotate_log(self, api_version: int) -> int:
        """Freeze the active log of ``api_version``, start a new shard, publish the trust root."""
        self.logs.rollover(api_version, passphrase=self.passphrase())
        return self.publish_trust()

    def _write_trust_documents(self, config: InstanceConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        trusted_root, signing_config = self.trust_documents(config)
        _make_dir(self.path("trust"), 0o755)
        _write_json(self.path("trust", TARGET_TRUSTED_ROOT), trusted_root)
        _write_json(self.path("trust", TARGET_SIGNING_CONFIG), signing_config)
        _write_json(self.path("trust", "trust_config.json"),
                    docs.build_client_trust_config(trusted_root, signing_config))
        return trusted_root, signing_config

    def publish_trust(self) -> int:
        """Rebuild the trust documents (after a rotation) and publish them through TUF."""
        from sealtrail.tufrepo import RepoKeys, TrustRepository

        trusted_root, signing_config = self._write_trust_documents(self.config())
        keys = RepoKeys.load(self.path("keys", "tuf"), password=self.passphrase())
        repo = TrustRepository.open(self.path("tuf"), keys)
        return repo.publish({TARGET_TRUSTED_ROOT: _json_bytes(trusted_root),
                             TARGET_SIGNING_CONFIG: _json_bytes(signing_config)})

    # -- tokens from the built-in issuer -------------------------------------------------
    def builtin_issuer(self, kind: str = "email") -> BuiltinIssuer:
        """The built-in issuer for ``kind`` ``email``, ``github`` or ``gitlab`` identities."""
        from sealtrail.issuer import BuiltinIssuer, load_issuer_key_file

        config = self.config()
        key = load_issuer_key_file(self.path("keys", "oidc.pem"), self.passphrase())
        urls = {"github": config.oidc_github_url, "gitlab": config.oidc_gitlab_url}
        return BuiltinIssuer(urls.get(kind, config.oidc_url), key)

    def token_secret(self) -> bytes:
        from sealtrail.issuer import load_token_secret

        return load_token_secret(self.path("keys", "token-secret"))

    def refresh_tuf(self) -> tuple[str, ...]:
        """Re-sign TUF metadata that is close to expiry (the timestamp lives one day)."""
        from sealtrail.tufrepo import RepoKeys, TrustRepository

        keys = RepoKeys.load(self.path("keys", "tuf"), password=self.passphrase())
        return TrustRepository.open(self.path("tuf"), keys).refresh_expiring()

    def _refresh_tuf_loop(self, stop: threading.Event) -> None:
        import logging

        log = logging.getLogger("sealtrail.server")
        while True:
            try:
                refreshed = self.refresh_tuf()
                if refreshed:
                    log.warning("re-signed TUF metadata: %s", ", ".join(refreshed))
            except Exception as exc:  # keep serving; the next round retries
                log.error("TUF metadata refresh failed: %s", exc)
            if stop.wait(TUF_REFRESH_SECONDS):
                return

    # -- the CA and its token verifier ---------------------------------------------------------
    def certificate_authority(self, *, record: IssuanceRecord | None = None,
                              ct_append: Callable[[Callable[[int], bytes]], int] | None = None
                              ) -> CertificateAuthority:
        """The CA of the active key generation, with the instance's CT log.

        ``record`` (an :class:`sealtrail.ca.record.IssuanceRecord`) receives every certificate
        before it is returned; `serve` passes the instance's, `ca dry-run` none.
        ``ct_append`` (:meth:`sealtrail.server.ct_log.CTLogService.append`) has every
        precertificate logged before its SCT is signed; `serve` passes it, `ca dry-run`
        (which logs nothing) none.
        """
        from sealtrail.ca.authority import CertificateAuthority
        from sealtrail.ca.ctlog import CTLog
        from sealtrail.ca.keys import load_ca, load_ct_key

        passphrase = self.passphrase()
        material = load_ca(*self.active_ca_dirs(), passphrase=passphrase)
        ct_log = CTLog(load_ct_key(self.keys_dir, passphrase=passphrase), append=ct_append)
        return CertificateAuthority(material.intermediate_key, material.chain, ct_log,
                                    on_issue=record.record if record is not None else None)

    def ct_log_storage(self) -> LogStorage:
        """Where the CT log keeps its entries and tiles: DIR/ct/log, or the PostgreSQL schema
        ``ct_log`` and the configured tiles (docs/instance.md "Storage")."""
        from sealtrail.server.storage import open_ct_log_storage

        return open_ct_log_storage(self.config().storage, self.path("ct", "log"))

    def issuance_record(self) -> IssuanceRecord:
        """The CA's record of issued certificates (DIR/ca/issued.sqlite, or the PostgreSQL
        schema ``ca``; the latter holds the serving lock `rotate` checks while open)."""
        from sealtrail.server.storage import open_issuance_record

        return open_issuance_record(self.config().storage, self.path("ca", "issued.sqlite"))

    def token_issuers(self) -> tuple[list[IssuerConfig], Callable[[str], Any],
                                     list[BuiltinIssuer]]:
        """(issuer configs, JWKS fetcher, built-in issuers) as the CA sees them."""
        from sealtrail.ca.token_verifier import IssuerConfig
        from sealtrail.server.ca_api import make_fetch_json

        config = self.config()
        issuers = [IssuerConfig.from_dict(item) for item in config.issuers]
        fetch_json: Callable[[str], Any] = make_fetch_json()
        builtin: list[BuiltinIssuer] = []
        if config.builtin_issuer:
            builtin = [self.builtin_issuer("email"), self.builtin_issuer("github"),
                       self.builtin_issuer("gitlab")]
            # The GitLab issuer plays the server too: its URL is the base of the project and
            # job URLs (.12, .16, .21), as https://gitlab.com is on GitLab.com.
            issuers += [IssuerConfig(config.oidc_url, "email"),
                        IssuerConfig(config.oidc_github_url, "github-workflow"),
                        IssuerConfig(config.oidc_gitlab_url, "gitlab-pipeline",
                                     ci_base_url=config.oidc_gitlab_url)]
            fetch_json = _answer_locally(builtin, fetch_json)
        return issuers, fetch_json, builtin

    # -- serving ---------------------------------------------------------------------------
    def build_app(self) -> Starlette:
        """Every service of the instance as one ASGI app."""

        from starlette.applications import Starlette
        from starlette.responses import FileResponse, JSONResponse, Response
        from starlette.routing import Route

        from sealtrail.ca.token_verifier import TokenVerifier
        from sealtrail.server._http import EXCEPTION_HANDLERS, ApiError
        from sealtrail.ca.keys import load_ca, load_ct_key
        from sealtrail.server.ca_api import build_ca_routes
        from sealtrail.server.ct_log import CTLogService, ct_log_origin
        from sealtrail.server.log_api import log_routes
        from sealtrail.server.issuer_api import build_oidc_routes
        from sealtrail.server.tsa_api import build_tsa_routes
        from sealtrail.tufrepo import resolve
        from sealtrail.tsa.authority import TimestampAuthority
        from sealtrail.tsa.keys import load_tsa

        passphrase = self.passphrase()
        issuers, fetch_json, builtin = self.token_issuers()
        routes: list[BaseRoute] = []
        for issuer, prefix in zip(builtin, ("/oidc", "/oidc/github", "/oidc/gitlab")):
            # A browser login is for a person, whose identity is an email address: only the
            # email issuer has one (loopback clients only, see issuer_api).
            routes += build_oidc_routes(issuer, self.token_secret(), prefix=prefix,
                                        browser_login=prefix == "/oidc")
        record = self.issuance_record()
        # The CT log serves every CA generation's certificates as issuers (entries made
        # before a rotation name the older ones).
        ct_issuers = [cert for generation in self.config().generations()
                      for cert in load_ca(self.path("keys", generation["dir"]),
                                          self.path("certs", generation["dir"]),
                                          passphrase=passphrase).chain]
        ct_log = CTLogService.open(self.ct_log_storage(),
                                   load_ct_key(self.keys_dir, passphrase=passphrase),
                                   ct_log_origin(self.config().public_url), ct_issuers)
        authority = self.certificate_authority(record=record, ct_append=ct_log.append)
        routes += build_ca_routes(authority, TokenVerifier(issuers, fetch_json), issuers)
        routes += ct_log.routes()
        tsa = load_tsa(self.keys_dir, self.certs_dir, passphrase=passphrase)
        routes += build_tsa_routes(TimestampAuthority(tsa.leaf_key, tsa.chain))
        services = self.logs.open(passphrase=passphrase)
        # The logs file entries under an identity only if this CA issued the certificate.
        routes += log_routes(services, identity_issuers=authority.chain)

        trust_files = {
            "/trust/trusted_root.json": self.path("trust", TARGET_TRUSTED_ROOT),
            "/trust/signing_config.v0.2.json": self.path("trust", TARGET_SIGNING_CONFIG),
            "/trust/trust_config.json": self.path("trust", "trust_config.json"),
        }

        async def trust_document(request: Request) -> Response:
            return FileResponse(trust_files[request.url.path], media_type="application/json",
                                headers={"Cache-Control": "no-cache"})

        tuf_root = self.path("tuf")

        async def tuf_file(request: Request) -> Response:
            resolved = resolve(tuf_root, request.path_params["path"])
            if resolved is None or not os.path.isfile(resolved):
                raise ApiError(404, "NOT_FOUND", "no such TUF file")
            return FileResponse(resolved, headers={"Cache-Control": "no-cache"})

        def log_health(engine: LogEngine) -> dict[str, Any]:
            state = engine.health()
            return {"size": state.size, "integrator": state.integrator,
                    "checkpointAgeSeconds": round(state.checkpoint_age, 3),
                    "backlog": state.backlog}

        async def health(request: Request) -> Response:
            # For load balancers and monitoring (docs/operations.md): 200 while serving.
            # Every replica reports its view; exactly one should say "integrator": true
            # for each log.
            return JSONResponse({"status": "ok",
                                 "logs": {s.name: log_health(s.engine) for s in services},
                                 "ctLog": log_health(ct_log.engine)})

        routes += [Route(path, trust_document, methods=["GET"]) for path in trust_files]
        routes += [Route("/tuf/{path:path}", tuf_file, methods=["GET"]),
                   Route("/healthz", health, methods=["GET"])]

        stop_refresh = threading.Event()
        refresher = threading.Thread(target=self._refresh_tuf_loop, args=(stop_refresh,),
                                     name="tuf-refresh", daemon=True)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            refresher.start()
            try:
                yield
            finally:
                stop_refresh.set()
                for service in services:
                    service.engine.close()
                ct_log.close()
                record.close()

        app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
        # serve() bounds client connections with these (sealtrail.server.run.ServerLimits).
        app.state.server_limits = self.config().server_limits
        return app


TUF_REFRESH_SECONDS = 3600.0


def _answer_locally(issuers: list[BuiltinIssuer], fallback: Callable[[str], Any]) -> Callable[[str], Any]:
    """The CA fetches the built-in issuers' discovery and JWKS from memory, not over HTTP."""
    local = {}
    for issuer in issuers:
        local[issuer.discovery_url] = issuer.discovery()
        local[issuer.issuer_url + "/jwks"] = issuer.jwks()

    def fetch(url: str) -> Any:
        if url in local:
            return local[url]
        return fallback(url)

    return fetch


def _prepare_storage(storage: StorageConfig, instance: Instance) -> None:
    """Reach the database and create the schemas of the CA record, the default logs and the
    CT log before `init` writes a file; refuse a database that holds another instance's data.
    On failure what this made (tiles under the instance directory) is removed again."""
    from sealtrail.server.log_instance import DEFAULT_LOG_NAMES
    from sealtrail.server.storage import open_ct_log_storage, open_issuance_record

    logs = LogDirectory(instance.path("logs"), storage=storage)
    # What this call creates (nothing but storage is in it yet): the instance directory, or
    # the sub-directories the logs' and the CT log's tiles go to under an existing one.
    made = [instance.directory] if not os.path.exists(instance.directory) else [
        path for path in (logs.directory, instance.path("ct")) if not os.path.exists(path)]
    try:
        record = open_issuance_record(storage, "")
        try:
            if record.count():
                raise UsageError("the database already holds an instance's data (issued "
                                 "certificates in schema ca): give `init` an empty database")
        finally:
            record.close()
        for name in DEFAULT_LOG_NAMES:
            _require_empty(logs.log_storage(name), f"log {name}")
        _require_empty(open_ct_log_storage(storage, instance.path("ct", "log")), "the CT log")
    except BaseException:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _require_empty(opened: LogStorage, what: str) -> None:
    """Close ``opened``, refusing it (UsageError) when it holds entries or a tree state."""
    try:
        if opened.sequencer.sequenced_size() or opened.sequencer.load_state():
            raise UsageError(f"the database already holds an instance's data ({what}): give "
                             "`init` an empty database")
    finally:
        opened.close()


def _make_dir(path: str, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` (the umask may only remove bits from what
    makedirs asks for, and gives parents its default), or tighten an existing one to it:
    a directory the instance writes must never be writable by others."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755, exist_ok=True)
    os.makedirs(path, mode=mode, exist_ok=True)
    if os.name == "posix":
        current = stat.S_IMODE(os.stat(path).st_mode)
        if current & ~mode:
            os.chmod(path, current & mode)


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


def _write_json(path: str, document: dict[str, Any]) -> None:
    write_atomic(path, _json_bytes(document))


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ConfigInvalidError(f"{CONFIG_NAME} holds a malformed time", actual=text,
                                 expected="YYYY-MM-DDTHH:MM:SSZ") from None
