"""Debian's nginx running the shipped deploy/nginx.conf with its example ports replaced (tests and bench)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        raise RuntimeError("nginx is not installed: `make test` installs Debian's nginx-light")
    return found


class Nginx:
    """The shipped site file with its example ports replaced, under a private main configuration."""

    def __init__(self, workdir: Path, replica_ports: list[int]) -> None:
        site = SITE.read_text()
        for example, port in zip(("8001", "8002"), replica_ports, strict=True):
            line = f"server 127.0.0.1:{example} "
            assert site.count(line) == 1, f"deploy/nginx.conf no longer lists {line.strip()}"
            site = site.replace(line, f"server 127.0.0.1:{port} ")
        self.port = free_port()
        assert site.count("listen 8000;") == 1
        site = site.replace("listen 8000;", f"listen 127.0.0.1:{self.port};")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "permachat.conf").write_text(site)
        self.access_log = workdir / "access.log"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read this private directory
        temp = " ".join(f"{kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                             "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\nworker_rlimit_nofile 16384;\n{user}pid {workdir / 'nginx.pid'};\n"
            # Each proxied stream takes two connections (client and replica): Debian's default of 768 a
            # worker would refuse the 385th concurrent stream.
            f"error_log {workdir / 'error.log'} info;\nevents {{ worker_connections 8192; }}\n"
            f"http {{\n  log_format upstream '$request $status $upstream_addr';\n"
            f"  access_log {self.access_log} upstream;\n  {temp}\n"
            f"  include {workdir / 'permachat.conf'};\n}}\n")
        self.workdir = workdir
        check = subprocess.run([nginx_binary(), "-t", "-p", str(workdir), "-e", str(workdir / "error.log"),
                                "-c", str(workdir / "nginx.conf")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([nginx_binary(), "-p", str(workdir), "-e", str(workdir / "error.log"),
                                      "-c", str(workdir / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {(workdir / 'error.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def replicas_used(self) -> set[str]:
        return {line.rsplit(" ", 1)[-1] for line in self.access_log.read_text().splitlines() if line.strip()}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
