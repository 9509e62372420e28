"""Benchmark: 1,000 slow streams held open against one gateway worker, on SQLite and PostgreSQL.

    .venv/bin/python bench/sustained.py [--seconds 30] [--streams 1000] [--words 100]
                                        [--db sqlite|postgres|both|deployment|all] [--json FILE]

For each database, starts in its own process on 127.0.0.1 the test upstream
(``tests/upstreams/openai_upstream.py``) and the whole permachat deployment (one
worker; SQLite in a temp dir, or a fresh PostgreSQL database created and dropped
on ``--postgres``), set up as ``bench/gateway.py`` does. A client process then
keeps ``--streams`` streamed chat completions (``stream_options.include_usage``)
in flight for ``--seconds``: each asks the upstream for a slow model (a word
every 20-50 ms, ``--words`` words, 100 by default, so 2-5 s a stream) and, when
it ends, its slot starts another. Then the last streams drain and nothing new
starts.

``--db deployment`` runs the same load through nginx with the shipped
``deploy/nginx.conf`` in front of two ``permachat serve`` replicas (one with
``--workers 2``) on PostgreSQL and Redis, as the README deploys it.

Prints, per database: the streams completed, throughput (streams/s and
chunks/s), time to first token and stream duration (p50/p99), errors (non-200,
broken streams, no ``[DONE]``, no usage chunk), the gateway's RSS and CPU time
per stream (from ``/proc``), the most connections it held to the upstream at
once, the cores each process used (to see which one bounds the run), and
whether the money reconciles once every stream has ended: the account's balance
went down by exactly the sum of its ``request_log.quota`` rows, every request
has one log row and the ``hold`` table is empty. ``--json`` writes the same
figures. Time to first token counts from the request to the first chunk with
text, so it includes the upstream's own first 20-50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import prepare_database, start  # noqa: E402

MODEL = "gpt-4o-mini"
EMAIL = "bench@example.com"  # the account prepare_database creates
DELAY = (0.02, 0.05)  # seconds between the upstream's chunks, drawn per stream
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
HOLDS_WAIT = 30.0  # seconds the settlements get to land after the last stream


def raise_open_files() -> int:
    """Raise this process's (and so its children's) open-file limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    # utime and stime are fields 14 and 15; the command name before them may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections ``pid`` holds to ``port`` on this host (its upstream pool in use)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    sockets = set()
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in sockets:
                count += 1
    return count


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# The client: its own process, so that parsing 1,000 streams does not take the gateway's CPU.

def expected_chunks(words: int) -> int:
    return words + 3  # the role chunk, one a word, the finish chunk, the usage chunk


async def stream_once(session, url: str, headers: dict[str, str], reply: str, rng: random.Random) -> dict:
    """One streamed completion; what the client saw."""
    import aiohttp

    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Tell me about the sea, at length."}],
            "x_upstream": {"delay": round(rng.uniform(*DELAY), 4), "reply": reply}}
    seen = {"status": 0, "ttft": None, "duration": None, "chunks": 0, "done": False, "usage": False, "error": ""}
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=json.dumps(body), headers=headers) as resp:
            seen["status"] = resp.status
            if resp.status != 200:
                seen["error"] = (await resp.text())[:200]
                return seen
            pending = b""
            async for data in resp.content.iter_any():
                pending += data
                *events, pending = pending.split(b"\n\n")
                for event in events:
                    if not event.startswith(b"data: "):
                        continue  # a ": ping" comment
                    if event == b"data: [DONE]":
                        seen["done"] = True
                        continue
                    seen["chunks"] += 1
                    if b'"usage":{' in event:
                        seen["usage"] = True
                    if seen["ttft"] is None:
                        choices = json.loads(event[6:]).get("choices") or [{}]
                        if (choices[0].get("delta") or {}).get("content"):
                            seen["ttft"] = time.perf_counter() - t0
            if pending.strip():
                seen["error"] = f"unterminated event {pending[:80]!r}"
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        seen["error"] = repr(exc)[:200]
    seen["duration"] = time.perf_counter() - t0
    return seen


async def hold_streams(url: str, key: str, streams: int, seconds: float, words: int) -> dict:
    """Keep ``streams`` in flight for ``seconds``, then let them finish."""
    import aiohttp

    rng = random.Random(1)
    reply = " ".join(f"word{i}" for i in range(words))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=90)
    connector = aiohttp.TCPConnector(limit=streams, limit_per_host=streams)
    seen: list[dict] = []
    in_flight = [0]
    samples: list[int] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        stop_at = started + seconds

        async def slot() -> None:
            while time.perf_counter() < stop_at:
                in_flight[0] += 1
                try:
                    seen.append(await stream_once(session, url + "/v1/chat/completions", headers, reply, rng))
                finally:
                    in_flight[0] -= 1

        async def sample() -> None:
            await asyncio.sleep(1.0)  # past the ramp-up
            while time.perf_counter() < stop_at:
                samples.append(in_flight[0])
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(slot() for _ in range(streams)))
        elapsed = time.perf_counter() - started
        sampler.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"elapsed": elapsed, "streams": seen, "in_flight": samples,
            "client_cpu": usage.ru_utime + usage.ru_stime}


def client_main(url: str, key: str, streams: int, seconds: float, words: int, out: str) -> None:
    raise_open_files()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    Path(out).write_text(json.dumps(asyncio.run(hold_streams(url, key, streams, seconds, words))))


def summarise(raw: dict, words: int) -> dict:
    """The client's figures from what each stream saw."""
    streams = raw["streams"]
    ok = [s for s in streams if s["status"] == 200 and s["done"] and s["usage"] and not s["error"]]
    non_200 = [s for s in streams if s["status"] != 200]
    broken = [s for s in streams if s["status"] == 200 and s["error"]]
    no_done = [s for s in streams if s["status"] == 200 and not s["error"] and not s["done"]]
    no_usage = [s for s in streams if s["status"] == 200 and not s["error"] and s["done"] and not s["usage"]]
    short = [s for s in ok if s["chunks"] != expected_chunks(words)]
    samples = raw["in_flight"] or [0]
    examples = sorted({f"{s['status'] or 'no answer'} {s['error']}".strip() for s in non_200 + broken})[:5]
    return {
        "requests": len(streams),
        "completed": len(ok),
        "in_flight_min": min(samples),
        "in_flight_mean": sum(samples) / len(samples),
        "elapsed_s": raw["elapsed"],
        "streams_per_s": len(ok) / raw["elapsed"],
        "chunks_per_s": sum(s["chunks"] for s in streams) / raw["elapsed"],
        "ttft_p50_ms": percentile([s["ttft"] * 1000 for s in ok if s["ttft"] is not None], 0.50),
        "ttft_p99_ms": percentile([s["ttft"] * 1000 for s in ok if s["ttft"] is not None], 0.99),
        "duration_p50_s": percentile([s["duration"] for s in ok], 0.50),
        "duration_p99_s": percentile([s["duration"] for s in ok], 0.99),
        "errors": len(non_200) + len(broken) + len(no_done) + len(no_usage),
        "errors_non_200": len(non_200),
        "errors_broken": len(broken),
        "errors_no_done": len(no_done),
        "errors_no_usage": len(no_usage),
        "short_streams": len(short),
        "error_examples": examples,
        "client_cpu_s": raw["client_cpu"],
    }


# The database: created for the run, read afterwards for the money.

def create_postgres(admin_url: str) -> str:
    import psycopg2

    name = f"permachat_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_postgres(admin_url: str, url: str) -> None:
    import psycopg2

    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    admin.close()


def open_ledger(url: str):
    from kernel.db import bind

    database = bind(url)
    database.connect(reuse_if_open=True)
    return database


def balance(url: str) -> int:
    from kernel.models import User

    database = open_ledger(url)
    try:
        return User.by_email(EMAIL).quota
    finally:
        database.close()


def money(url: str, start_quota: int) -> dict:
    """Whether the account's balance and its log rows agree, once every hold is gone."""
    from peewee import fn

    from kernel.models import Hold, RequestLog, Token, User

    database = open_ledger(url)
    try:
        waited = time.perf_counter()
        while Hold.select().count() and time.perf_counter() - waited < HOLDS_WAIT:
            time.sleep(0.2)
        holds = Hold.select().count()
        user = User.by_email(EMAIL)
        rows = RequestLog.select().where((RequestLog.user_id == user.id) & (RequestLog.kind == "relay"))
        logged = int(rows.select(fn.COALESCE(fn.SUM(RequestLog.quota), 0)).scalar())  # a Decimal on PostgreSQL
        token_used = int(Token.select(fn.SUM(Token.used_quota)).where(Token.user == user).scalar() or 0)
        return {
            "holds_left": holds,
            "holds_clear_s": time.perf_counter() - waited,
            "quota_consumed": start_quota - user.quota,
            "quota_logged": logged,
            "used_quota": user.used_quota,
            "token_used_quota": token_used,
            "log_rows": rows.count(),
            "log_rows_not_200": rows.where(RequestLog.status_code != 200).count(),
            "money_reconciles": holds == 0 and start_quota - user.quota == logged == user.used_quota == token_used,
        }
    finally:
        database.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a replica started with ``--workers N`` is a supervisor and N workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def measure(target: str, key: str, gateways: list[int], upstream_proc: subprocess.Popen, upstream: str,
            url: str, start_quota: int, args: argparse.Namespace, data_dir: str, procs: list) -> dict:
    """Hold the streams against ``target``; the figures of the gateway processes ``gateways`` (and trees)."""
    warm_up = asyncio.run(hold_streams(target, key, 8, 0.5, args.words))  # imports, pools, caches
    time.sleep(1)
    served = [p for pid in gateways for p in process_tree(pid)]
    rss_start = sum(rss_mb(p) for p in served)
    cpu_start = {p: cpu_seconds(p) for p in [*served, upstream_proc.pid]}
    out = Path(data_dir) / "client.json"
    client = subprocess.Popen([sys.executable, __file__, "--client", target, "--key", key,
                               "--streams", str(args.streams), "--seconds", str(args.seconds),
                               "--words", str(args.words), "--out", str(out)], cwd=ROOT)
    procs.append(client)
    rss_peak, upstream_peak = rss_start, 0
    upstream_port = int(upstream.rsplit(":", 1)[1])
    while client.poll() is None:
        rss_peak = max(rss_peak, sum(rss_mb(p) for p in served))
        upstream_peak = max(upstream_peak, sum(connections_to(p, upstream_port) for p in served))
        time.sleep(0.5)
    if client.returncode:
        raise SystemExit(f"the client failed ({client.returncode})")
    rss_end = sum(rss_mb(p) for p in served)
    gateway_cpu = sum(cpu_seconds(p) - cpu_start[p] for p in served)
    upstream_cpu = cpu_seconds(upstream_proc.pid) - cpu_start[upstream_proc.pid]
    figures = summarise(json.loads(out.read_text()), args.words)
    figures |= {
        "streams": args.streams,
        "seconds": args.seconds,
        "words": args.words,
        "requests_with_warm_up": figures["requests"] + len(warm_up["streams"]),
        "gateway_upstream_connections_peak": upstream_peak,
        "gateway_processes": len(served),
        "gateway_rss_start_mb": rss_start,
        "gateway_rss_peak_mb": rss_peak,
        "gateway_rss_end_mb": rss_end,
        "gateway_rss_growth_mb": rss_end - rss_start,
        "gateway_cpu_s": gateway_cpu,
        "gateway_cpu_ms_per_stream": gateway_cpu / max(1, figures["requests"]) * 1000,
        "gateway_cores": gateway_cpu / figures["elapsed_s"],
        "upstream_cores": upstream_cpu / figures["elapsed_s"],
        "client_cores": figures["client_cpu_s"] / figures["elapsed_s"],
    }
    figures |= money(url, start_quota)
    figures["every_request_logged"] = figures["log_rows"] == figures["requests_with_warm_up"]
    return figures


def stop_all(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=60)  # the gateway's shutdown grace is 30 s
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(kind: str, args: argparse.Namespace) -> dict:
    """One database's run on one gateway worker: start everything, hold the streams, stop everything."""
    procs: list[subprocess.Popen] = []
    url = create_postgres(args.postgres) if kind == "postgres" else ""
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = {k: v for k, v in os.environ.items() if k != "PERMACHAT_DATABASE_URL"}
            os.environ.pop("PERMACHAT_DATABASE_URL", None)
            if url:
                os.environ["PERMACHAT_DATABASE_URL"] = env["PERMACHAT_DATABASE_URL"] = url
            url = url or f"sqlite:///{data_dir}/permachat.db"
            upstream_proc, upstream = start("upstream", env)
            procs.append(upstream_proc)
            key = prepare_database(data_dir, upstream)
            start_quota = balance(url)
            env |= {"PERMACHAT_DATA_DIR": data_dir, "PERMACHAT_LOG_LEVEL": "warning"}
            gw_proc, gateway = start("gateway", env)
            procs.append(gw_proc)
            figures = measure(gateway, key, [gw_proc.pid], upstream_proc, upstream, url, start_quota, args,
                              data_dir, procs)
            return {"db": kind, **figures}
    finally:
        stop_all(procs)
        if kind == "postgres":
            drop_postgres(args.postgres, url)


def run_deployment(args: argparse.Namespace) -> dict:
    """The same load through nginx (deploy/nginx.conf) in front of two replicas, as the README deploys it.

    Replica A runs ``permachat serve --workers 2``, replica B one worker, on a fresh
    PostgreSQL database and the Redis at ``--redis``; the gateway figures add up all
    their processes.
    """
    from tests.deployment.nginx import Nginx
    from tests.processes import Served, clean_env

    procs: list = []
    url = create_postgres(args.postgres)
    proxy = None
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = clean_env(PERMACHAT_DATABASE_URL=url, PERMACHAT_REDIS_URL=args.redis,
                            PERMACHAT_SECRET_KEY=uuid.uuid4().hex, PERMACHAT_DATA_DIR=data_dir,
                            PERMACHAT_LOG_LEVEL="warning")
            upstream_proc, upstream = start("upstream", env)
            procs.append(upstream_proc)
            os.environ["PERMACHAT_DATABASE_URL"] = url
            key = prepare_database(data_dir, upstream)
            start_quota = balance(url)
            replicas = [Served(env, Path(data_dir) / "logs", "--workers", "2").wait_healthy(),
                        Served(env, Path(data_dir) / "logs").wait_healthy()]
            procs += [r.proc for r in replicas]
            proxy = Nginx(Path(data_dir) / "nginx", [r.port for r in replicas])
            figures = measure(proxy.url, key, [r.proc.pid for r in replicas], upstream_proc, upstream, url,
                              start_quota, args, data_dir, procs)
            return {"db": "2 replicas", **figures}
    finally:
        if proxy is not None:
            proxy.stop()
        stop_all(procs)
        drop_postgres(args.postgres, url)


ROWS = [
    ("streams held (target)", "streams", "{:.0f}"),
    ("in flight, min / mean", ("in_flight_min", "in_flight_mean"), "{:.0f} / {:.0f}"),
    ("upstream conns, peak", "gateway_upstream_connections_peak", "{:.0f}"),
    ("streams completed", "completed", "{:.0f}"),
    ("wall time incl. drain s", "elapsed_s", "{:.1f}"),
    ("streams/s", "streams_per_s", "{:.1f}"),
    ("chunks/s", "chunks_per_s", "{:.0f}"),
    ("TTFT p50 / p99 ms", ("ttft_p50_ms", "ttft_p99_ms"), "{:.0f} / {:.0f}"),
    ("duration p50 / p99 s", ("duration_p50_s", "duration_p99_s"), "{:.2f} / {:.2f}"),
    ("errors", "errors", "{:.0f}"),
    ("  non-200 / broken", ("errors_non_200", "errors_broken"), "{:.0f} / {:.0f}"),
    ("  no [DONE] / no usage", ("errors_no_done", "errors_no_usage"), "{:.0f} / {:.0f}"),
    ("  not words + 3 chunks", "short_streams", "{:.0f}"),
    ("gateway processes", "gateway_processes", "{:.0f}"),
    ("gateway RSS start MB", "gateway_rss_start_mb", "{:.0f}"),
    ("gateway RSS peak MB", "gateway_rss_peak_mb", "{:.0f}"),
    ("gateway RSS end MB", "gateway_rss_end_mb", "{:.0f}"),
    ("gateway RSS growth MB", "gateway_rss_growth_mb", "{:+.0f}"),  # all processes; the target is per process
    ("gateway CPU ms/stream", "gateway_cpu_ms_per_stream", "{:.1f}"),
    ("cores: gw / upstr / client", ("gateway_cores", "upstream_cores", "client_cores"), "{:.2f} / {:.2f} / {:.2f}"),
    ("holds left / s to clear", ("holds_left", "holds_clear_s"), "{:.0f} / {:.1f}"),
    ("quota consumed", "quota_consumed", "{:.0f}"),
    ("sum request_log.quota", "quota_logged", "{:.0f}"),
    ("requests (+ warm-up)", "requests_with_warm_up", "{:.0f}"),
    ("log rows / not 200", ("log_rows", "log_rows_not_200"), "{:.0f} / {:.0f}"),
    ("money reconciles", "money_reconciles", "{}"),
    ("one log row a request", "every_request_logged", "{}"),
]


def table(results: list[dict]) -> str:
    width = 28
    lines = [f"{'':{width}}" + "".join(f"{r['db']:>20}" for r in results)]
    for label, keys, fmt in ROWS:
        keys = keys if isinstance(keys, tuple) else (keys,)
        cells = [fmt.format(*(r[k] for k in keys)) for r in results]
        lines.append(f"{label:{width}}" + "".join(f"{c:>20}" for c in cells))
    targets = []
    for r in results:
        missed = [what for what, ok in (("errors", r["errors"] == 0), ("RSS growth", r["gateway_rss_growth_mb"] / r["gateway_processes"] < 200),
                                        ("money", r["money_reconciles"]),
                                        ("log rows", r["every_request_logged"])) if not ok]
        targets.append("met" if not missed else "MISSED: " + ", ".join(missed))
        if r["error_examples"]:
            lines.append(f"{r['db']} errors, e.g.: " + "; ".join(r["error_examples"]))
    lines.insert(len(ROWS) + 1, f"{'targets':{width}}" + "".join(f"{t:>20}" for t in targets))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the streams are held (default 30)")
    parser.add_argument("--streams", type=int, default=1000, help="streams in flight (default 1000)")
    parser.add_argument("--words", type=int, default=100,
                        help="words a reply streams, one chunk each (default 100: 2-5 s a stream)")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both", "deployment", "all"), default="both",
                        help="one worker on SQLite, on PostgreSQL, both (default), or the two-replica "
                             "deployment behind nginx on PostgreSQL and Redis, or all three")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the deployment's Redis")
    parser.add_argument("--postgres", default=POSTGRES,
                        help="a PostgreSQL database to connect to while creating and dropping the run's own")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.key, args.streams, args.seconds, args.words, args.out)
        return
    limit = raise_open_files()
    if limit < 2 * args.streams + 200:
        raise SystemExit(f"open-file limit {limit} is too low for {args.streams} streams (the gateway holds two "
                         "sockets a stream)")
    kinds = {"both": ("sqlite", "postgres"), "all": ("sqlite", "postgres", "deployment")}.get(args.db, (args.db,))
    results = []
    for kind in kinds:
        print(f"{kind}: {args.streams} streams for {args.seconds:g} s ...", flush=True)
        results.append(run_deployment(args) if kind == "deployment" else run(kind, args))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
