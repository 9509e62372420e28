"""`permachat serve` as real processes, for tests where a process dies, stops or has a sibling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

PERMACHAT = str(Path(sys.executable).with_name("permachat"))


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without the developer's PERMACHAT_* and OPENAI_*, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMACHAT_", "OPENAI_"))}
    return env | settings


class Served:
    """One `permachat serve` process on a free port; its stderr goes to a file (a pipe could fill and stall it)."""

    def __init__(self, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"serve-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([PERMACHAT, "serve", "--port", str(self.port), *args], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_healthy(self, timeout: float = 60) -> Served:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"permachat serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"permachat serve did not answer /healthz:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: nothing of the process runs after this (no shutdown, no flush)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._log.close()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the process to exit; returns its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()


def serve(env: dict[str, str], log_dir: Path, *args: str) -> Served:
    return Served(env, log_dir, *args).wait_healthy()
