"""``sealtrail -v`` shows the debug records of ``sealtrail.net`` (retries, proxy choices,
fallbacks) on stderr; without it they stay quiet."""

from __future__ import annotations

import logging
from typing import Any

import pytest


def test_the_cli_verbose_flag_shows_this_modules_debug_records(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from sealtrail.cli.main import main

    monkeypatch.setenv("SEALTRAIL_TRUST_DIR", str(tmp_path))
    root = logging.getLogger("sealtrail")
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["trust", "show", "no-such-instance"]) == 2
        logging.getLogger("sealtrail.net").debug("a retry")
        assert "a retry" not in capsys.readouterr().err  # quiet without -v
        assert main(["-v", "trust", "show", "no-such-instance"]) == 2
        logging.getLogger("sealtrail.net").debug("a retry")
        assert "sealtrail: debug: sealtrail.net: a retry" in capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
