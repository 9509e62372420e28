"""Benchmark: the gateway against a bare pass-through proxy on the same stack (the floor).

    .venv/bin/python bench/gateway.py [--seconds 3]

Starts, each in its own process on 127.0.0.1: the test upstream
(``tests/upstreams/openai_upstream.py``), the whole permachat deployment (SQLite in
a temp dir, one worker) and two floor proxies (no auth, billing or logs):

- ``floor``: the bare pass-through the issue defines, Starlette + an
  ``httpx.AsyncClient`` (on the same aiohttp transport as the gateway) used the
  ordinary way: ``build_request`` and ``send``;
- ``floor-tx``: the same with the gateway's own choices for the process: it sends
  the way the gateway's hot path does, straight to the transport
  (:func:`gateway.http_client.send`), is dispatched past Starlette's middlewares
  (:class:`webapp.asgi.Deployment`) and tunes the garbage collector
  (:func:`webapp.asgi.tune_gc`) as the gateway does. The gateway/floor-tx ratio
  is what auth, billing and logging cost at an equal relaying cost.

Loads each (and the upstream directly) with 1 and 32 concurrent clients,
streaming and not, and prints requests per second, p50/p99 latency, the CPU
time each proxy process spent per request (steadier than throughput on a busy
machine), the ratios, and the gateway's RSS (idle, and after the load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in a short sentence."}]}


def serve(kind: str, port: int, upstream: str) -> None:
    import uvicorn

    if kind == "upstream":
        from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app

        app = create_upstream_app(UpstreamState(record=False))
    elif kind in ("floor", "floor-tx"):
        app = floor_app(upstream, direct=kind == "floor-tx")
    else:
        from kernel.settings import Settings
        from webapp.asgi import create_asgi_app

        app = create_asgi_app(Settings.from_env())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def floor_app(upstream: str, *, direct: bool = False):
    """The least a relay on this stack can do: forward the body, stream the answer back.

    ``direct=True`` sends as the gateway does, straight to the transport.
    """
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    from gateway import http_client
    from kernel.settings import Settings

    http = http_client.upstream_client(Settings.from_env().upstream_timeout)
    url = upstream + "/v1/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer x"}

    async def chat(request: Request) -> Response:
        body = await request.body()
        if direct:
            resp = await http_client.send(http, "POST", url, content=body, headers=headers)
        else:
            resp = await http.send(http.build_request("POST", url, content=body, headers=headers), stream=True)
        if json.loads(body).get("stream"):
            async def relay():
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                finally:
                    await resp.aclose()
            return StreamingResponse(relay(), media_type="text/event-stream")
        content = await resp.aread()
        return Response(content, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with http:
            if direct:
                from webapp.asgi import tune_gc

                tune_gc()
            yield

    if not direct:
        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)
    from webapp.asgi import Deployment

    app = Deployment(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)
    app.fast_endpoints = {("POST", "/v1/chat/completions"): chat}
    return app


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, env: dict[str, str], upstream: str = "") -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port), "--upstream", upstream],
                            env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/models", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{kind} did not start")


def prepare_database(data_dir: str, upstream: str) -> str:
    """Migrate a fresh SQLite database with a funded key, a channel and a price; returns the key."""
    os.environ["PERMACHAT_DATA_DIR"] = data_dir
    import accounts
    from kernel.db import bind
    from kernel.settings import Settings
    from migrations import runner

    settings = Settings.from_env()
    database = bind(settings.database_url)
    database.connect()
    runner(database).up()
    user = accounts.create_user("bench@example.com", "password123")
    accounts.topup(user, "100000")
    key = accounts.create_token(user, name="bench").key
    accounts.add_channel(type="openai", name="upstream", base_url=upstream + "/v1", keys=["sk-x"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="0.15", output_usd="0.6")
    database.close()
    return key


async def load(url: str, key: str, clients: int, stream: bool, seconds: float) -> tuple[float, float, float, int, int]:
    import aiohttp

    body = json.dumps(BODY | {"stream": stream}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                async with session.post(url + "/v1/chat/completions", data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, p99 * 1000, errors, len(latencies)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve")
    parser.add_argument("--port", type=int)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.upstream)
        return
    env = dict(os.environ)
    procs = []
    with tempfile.TemporaryDirectory() as data_dir:
        try:
            upstream_proc, upstream = start("upstream", env)
            procs.append(upstream_proc)
            key = prepare_database(data_dir, upstream)
            env["PERMACHAT_DATA_DIR"] = data_dir
            env["PERMACHAT_LOG_LEVEL"] = "warning"
            gw_proc, gateway = start("gateway", env)
            floor_proc, floor = start("floor", env, upstream)
            tx_proc, floor_tx = start("floor-tx", env, upstream)
            procs += [gw_proc, floor_proc, tx_proc]
            pids = {"floor": floor_proc.pid, "floor-tx": tx_proc.pid, "gateway": gw_proc.pid}
            time.sleep(1)
            idle = rss_mb(gw_proc.pid)
            for url in (gateway, floor, floor_tx):  # warm-up
                asyncio.run(load(url, key, 4, False, 1.0))
            print(f"{'mode':8} {'clients':>7} {'target':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'cpu us/req':>10} {'errors':>6}")
            for stream in (False, True):
                for clients in (1, 32):
                    results, cpu = {}, {}
                    targets = (("upstream", upstream), ("floor", floor), ("floor-tx", floor_tx), ("gateway", gateway))
                    for name, url in targets:
                        before = cpu_seconds(pids[name]) if name in pids else 0.0
                        results[name] = asyncio.run(load(url, key, clients, stream, args.seconds))
                        rps, p50, p99, errors, count = results[name]
                        cpu[name] = (cpu_seconds(pids[name]) - before) / count * 1e6 if name in pids else 0.0
                        mode = "stream" if stream else "json"
                        shown = f"{cpu[name]:10.0f}" if name in pids else f"{'':>10}"
                        print(f"{mode:8} {clients:>7} {name:8} {rps:8.0f} {p50:8.2f} {p99:8.2f} {shown} {errors:>6}")
                    ratio = results["gateway"][0] / results["floor"][0]
                    ratio_tx = results["gateway"][0] / results["floor-tx"][0]
                    added = results["gateway"][1] - results["upstream"][1]
                    print(f"{'':8} {'':>7} gateway/floor throughput {ratio:.2f}x (cpu {cpu['floor'] / cpu['gateway']:.2f}x), "
                          f"gateway/floor-tx {ratio_tx:.2f}x (cpu {cpu['floor-tx'] / cpu['gateway']:.2f}x); "
                          f"gateway p50 - direct p50 = {added:+.2f} ms")
            print(f"gateway RSS: idle {idle:.0f} MB, after load {rss_mb(gw_proc.pid):.0f} MB")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
