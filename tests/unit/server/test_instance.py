"""sealtrail.json, the instance config, is parsed strictly (ADR 0002): JSON types, no
unknown fields, one-line errors that name the file and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sealtrail.cli.main import main
from sealtrail.errors import ConfigInvalidError
from sealtrail.server.instance import Instance, InstanceConfig

GOOD: dict[str, Any] = {
    "publicUrl": "https://sigstore.example.com", "host": "0.0.0.0", "port": 8443,
    "operator": "example", "builtinIssuer": False,
    "issuers": [{"url": "https://token.actions.githubusercontent.com",
                 "type": "github-workflow"}],
    "created": "2026-01-31T12:00:00Z", "encryptedKeys": True,
    "caGenerations": [{"dir": "", "start": "2026-01-31T12:00:00Z", "end": "2026-06-01T00:00:00Z"},
                      {"dir": "ca-2", "start": "2026-06-01T00:00:00Z", "end": ""}],
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_a_written_config_reads_back_the_same() -> None:
    config = InstanceConfig.from_json(GOOD)
    assert config.builtin_issuer is False and config.encrypted_keys is True
    assert config.port == 8443 and config.generations()[1]["dir"] == "ca-2"
    assert InstanceConfig.from_json(config.to_json()) == config
    # Optional fields take their defaults.
    minimal = InstanceConfig.from_json({"publicUrl": "http://127.0.0.1:8080/",
                                        "created": "2026-01-31T12:00:00Z"})
    assert minimal.public_url == "http://127.0.0.1:8080" and minimal.builtin_issuer is False
    assert minimal.port == 8080 and minimal.issuers == ()


@pytest.mark.parametrize("field,value,message", [
    # The truthiness trap: the string "false" must never turn the built-in issuer on.
    ("builtinIssuer", "false", "builtinIssuer must be true or false"),
    ("builtinIssuer", 0, "builtinIssuer must be true or false"),
    ("builtinIssuer", None, "builtinIssuer must be true or false"),
    ("encryptedKeys", "no", "encryptedKeys must be true or false"),
    ("port", True, "port must be an integer"),
    ("port", "8080", "port must be an integer"),
    ("port", 8080.0, "port must be an integer"),
    ("port", 70000, "port is out of range"),
    ("port", -1, "port is out of range"),
    ("host", 127, "host must be a string"),
    ("host", "", "host must not be empty"),
    ("operator", ["x"], "operator must be a string"),
    ("publicUrl", 5, "publicUrl must be a string"),
    ("publicUrl", "sigstore.example.com", "publicUrl must be an http(s) URL"),
    ("publicUrl", "https://x:port", "publicUrl is not a URL"),
    ("created", "yesterday", "created is not a time"),
    ("issuers", {"url": "https://x"}, "issuers must be a JSON array"),
    ("issuers", [GOOD["issuers"][0], {"url": "https://idp.example", "type": "email",
                                      "skipEmailVerified": "true"}],
     "issuers[1]: issuer https://idp.example: skip_email_verified must be a boolean"),
    ("issuers", [{"url": "https://idp.example", "type": "email", "audiance": "x"}],
     "issuers[0]: unknown issuer fields"),
    ("caGenerations", [{"dir": "", "start": "2026-01-31T12:00:00Z", "stop": ""}],
     "caGenerations[0] has unknown fields: 'stop'"),
    ("caGenerations", [{"dir": ""}], "caGenerations[0] has no start"),
    ("caGenerations", [{"dir": "../../etc", "start": "2026-01-31T12:00:00Z"}],
     "caGenerations[0].dir must be a plain directory name"),
    ("caGenerations", [{"start": "2026-01-31T12:00:00Z", "end": 0}],
     "caGenerations[0].end must be a string"),
])
def test_a_field_of_the_wrong_type_is_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        InstanceConfig.from_json(with_(**{field: value}), "/srv/i/sealtrail.json")
    assert f"/srv/i/sealtrail.json: {message}" in info.value.message
    assert "\n" not in info.value.diagnostics() and info.value.exit_code == 2


def test_unknown_and_missing_fields_are_refused() -> None:
    with pytest.raises(ConfigInvalidError, match="has unknown fields: 'builtinIssuers'"):
        InstanceConfig.from_json(with_(builtinIssuers=True))
    for field in ("publicUrl", "created"):
        with pytest.raises(ConfigInvalidError, match=f"has no {field}"):
            InstanceConfig.from_json({k: v for k, v in GOOD.items() if k != field})
    with pytest.raises(ConfigInvalidError, match="must be a JSON object"):
        InstanceConfig.from_json([GOOD])


def test_the_error_names_the_instance_file(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sealtrail.json"
    path.write_text(json.dumps(with_(builtinIssuer="false")))
    with pytest.raises(ConfigInvalidError, match=re.escape(f"{path}: builtinIssuer must be true")):
        Instance(str(tmp_path)).config()
    # The CLI: one line, the stable code, exit 2 (the built-in issuer was not used).
    code = main(["token", "email", "dev@example.com", "--instance", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sealtrail: error: CONFIG_INVALID: ")
    assert "builtinIssuer must be true or false (a JSON boolean) (got str 'false')" in err
    path.write_text("{not json")
    with pytest.raises(ConfigInvalidError, match=re.escape(f"{path} is not valid JSON")):
        Instance(str(tmp_path)).config()
