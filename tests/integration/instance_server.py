"""Create and serve a fresh sealtrail instance (`sealtrail init` + `sealtrail serve`) for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.integration.serving import start_server

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
NPM_SIGSTORE = REPO / "interop" / "node_modules" / ".bin" / "sigstore"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
    return done


@dataclass
class InstanceServer:
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url + "/oidc"

    @property
    def trust_config(self) -> Path:
        return self.directory / "trust" / "trust_config.json"

    @property
    def trusted_root(self) -> Path:
        return self.directory / "trust" / "trusted_root.json"

    def init(self, *extra: str) -> None:
        self.port = free_port()
        run(str(BIN / "sealtrail"), "init", str(self.directory), "--port", str(self.port),
            "--builtin-issuer", *extra)

    def start(self, timeout: float = 60) -> None:
        port_file = self.directory.parent / f"{self.directory.name}.port"
        if port_file.exists():
            port_file.unlink()
        self.process, port = start_server(
            [str(BIN / "sealtrail"), "serve", str(self.directory), "--port-file",
             str(port_file)], self.directory.parent / f"{self.directory.name}.log",
            timeout=timeout)
        assert port == self.port == int(port_file.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def token(self, email: str) -> str:
        return run(str(BIN / "sealtrail"), "token", "email", email, "--instance",
                   str(self.directory)).stdout.strip()
