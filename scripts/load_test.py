"""Load test of `modelsat serve` on loopback: fast stub upstreams, concurrency 1, 16, 64, 256, for proxies of
1 and 2 worker processes measured side by side (each level runs against every proxy in turn).

Prints, per repeat, concurrency level and worker count: throughput, end-to-end latency p50/p99 (ms), the
routing overhead the proxy reports (x-modelsat-routing-ms) p50/p99, the proxy's CPU time per request (ms, all
its processes), requests lost (error or incomplete stream) or hung (no end within --request-timeout), and the
proxy's RSS (all its processes). Also the router's own scoring time and the direct-to-upstream latency, so the
proxy's added latency can be read off.

    .venv/bin/python scripts/load_test.py                      # streaming, 3 repeats, bounded to ~4 minutes
    .venv/bin/python scripts/load_test.py --mode json --levels 1,16 --repeats 1 --workers 1

Everything runs on 127.0.0.1; the proxies (`serve_in_workers`, as `modelsat serve --workers N` runs them) and
the upstreams (one process each) are subprocesses of this script, stopped at exit.
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

import numpy as np

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.routers.base import Router, register

KEY = "sk-load-test-client"
WORDS = {"alpha": ["equation", "integral"], "beta": ["history", "empire"]}
PROMPTS = ["Solve the equation x + 1 = 3", "Which empire fell in 476?", "Compute the integral of x dx",
           "A question about history and wars"]


@register
class LoadTestKeywordRouter(Router):
    """A cheap deterministic router (keyword counts), so the figures measure the proxy, not a model."""
    name = "load-test-keyword"

    def fit(self, records, profiles):
        return self

    def score(self, instructions, candidates):
        return np.array([[sum(w in t.lower() for w in c.notes.get("keywords", [])) for c in candidates]
                         for t in instructions], dtype=float)


# ---- subprocesses --------------------------------------------------------------------------------------------

def run_upstream(name: str) -> None:
    from modelsat.serve.loopback import LoopbackServer, StubUpstream
    server = LoopbackServer(StubUpstream(name), access_log=False, log_level="warning").start()
    print(json.dumps({"port": server.port}), flush=True)
    server.thread.join()


def proxy_app():
    """The app each proxy worker builds (importing this module registers the load test's router there)."""
    from modelsat.serve.http_server import app_from_environment
    return app_from_environment()


def run_proxy(config: str, workers: int, port: int, log_level: str) -> None:
    from modelsat.serve.config import load_config
    from modelsat.serve.http_server import serve_in_workers
    print(json.dumps({"port": port}), flush=True)
    serve_in_workers(config, load_config(config), "127.0.0.1", port, workers, app_factory="load_test:proxy_app",
                     log_level=log_level, access_log=False)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 120.0) -> None:
    """Polls `url` until it answers (the workers are separate processes: no event to wait on)."""
    import httpx
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def spawn(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"subprocess {args} exited before it was ready (status {proc.wait()})")
    return proc, json.loads(line)


def write_zoo(tmp: Path, ports: dict) -> Path:
    models = []
    for name, port in ports.items():
        Profile(name, "load", {"math": SubjectScore(0.5, 20)}, {"keywords": WORDS[name]}).save(tmp / f"{name}.json")
        models.append({"name": name, "base_url": f"http://127.0.0.1:{port}/v1", "profile": f"{name}.json"})
    LoadTestKeywordRouter().save(tmp / "router")
    cfg = {"router": "router", "models": models, "auth": {"client_keys_env": ["LOAD_TEST_CLIENT_KEY"]},
           "timeouts": {"connect": 5, "first_byte": 30, "idle": 30}}
    path = tmp / "zoo.yaml"
    path.write_text(json.dumps(cfg))          # JSON is YAML
    return path


def _tree(pid: int) -> list:
    import psutil
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_mb(pid: int) -> float:
    """RSS of the process and its children (a proxy's workers), MiB."""
    return sum(p.memory_info().rss for p in _tree(pid)) / 2**20


def cpu_s(pid: int) -> float:
    """CPU seconds of the process and its live children."""
    return sum(t.user + t.system for t in (p.cpu_times() for p in _tree(pid)))


# ---- the load ------------------------------------------------------------------------------------------------

async def one(client, url: str, i: int, stream: bool, timeout: float) -> dict:
    body = {"model": "modelsat", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "stream": stream, "max_tokens": 5}
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
                data = await r.aread()
    except TimeoutError:
        return {"hung": True}
    except Exception as exc:  # noqa: BLE001 - a lost request is counted, whatever the cause
        return {"lost": f"{type(exc).__name__}: {exc}"[:120]}
    ok = r.status_code == 200 and (data.endswith(b"data: [DONE]\n\n") if stream else b'"choices"' in data)
    return {"ok": ok, "lost": None if ok else f"status {r.status_code}", "latency_ms": (time.perf_counter() - t0) * 1e3,
            "routing_ms": float(r.headers.get("x-modelsat-routing-ms", "nan"))}


async def level(url: str, concurrency: int, n: int, stream: bool, timeout: float) -> dict:
    import httpx
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # the client's own timeouts are the same bound, so a slow answer is "hung" (asyncio.timeout), never "lost"
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout + 5, pool=None)) as client:
        async def bounded(i):
            async with sem:
                return await one(client, url, i, stream, timeout)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(bounded(i) for i in range(n)))
        wall = time.perf_counter() - t0
    good = [r for r in results if r.get("ok")]
    lat = [r["latency_ms"] for r in good]
    rout = [r["routing_ms"] for r in good if r["routing_ms"] == r["routing_ms"]]
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    reasons = sorted({r["lost"] for r in results if r.get("lost")})
    return {"n": n, "ok": len(good), "lost": sum(1 for r in results if r.get("lost")), "reasons": reasons,
            "hung": sum(1 for r in results if r.get("hung")), "rps": len(good) / wall,
            "lat_p50": pct(lat, 50), "lat_p99": pct(lat, 99), "route_p50": pct(rout, 50), "route_p99": pct(rout, 99)}


def scoring_ms(repeats: int = 2000) -> float:
    router = LoadTestKeywordRouter()
    profiles = [Profile(n, "load", {}, {"keywords": w}) for n, w in WORDS.items()]
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        router.score([PROMPTS[i % len(PROMPTS)]], profiles)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,16,64,256")
    ap.add_argument("--workers", default="1,2", help="proxy worker counts, measured side by side")
    ap.add_argument("--requests", type=int, default=300, help="requests per level (at least 2 x concurrency)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", choices=["stream", "json"], default="stream")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="a request still open after this is hung")
    ap.add_argument("--time-limit", type=float, default=240.0, help="stop starting new levels after this (s)")
    ap.add_argument("--proxy-log-level", default="warning", help="uvicorn log level of the proxies (info shows "
                    "workers restarted by uvicorn's health check)")
    ap.add_argument("--_upstream", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_proxy", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._upstream:
        return run_upstream(args._upstream)
    if args._proxy:
        return run_proxy(args._proxy[0], int(args._proxy[1]), int(args._proxy[2]), args._proxy[3])

    start = time.monotonic()
    stream = args.mode == "stream"
    procs = []
    try:
        ports = {}
        for name in WORDS:
            up, info = spawn("--_upstream", name)
            procs.append(up)
            ports[name] = info["port"]
        with tempfile.TemporaryDirectory() as tmp:
            zoo = str(write_zoo(Path(tmp), ports))
            proxies = {}
            for w in [int(x) for x in args.workers.split(",")]:
                proc, info = spawn("--_proxy", zoo, str(w), str(free_port()), args.proxy_log_level,
                                   env={"LOAD_TEST_CLIENT_KEY": KEY, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(
                                       dir=tmp, prefix=f"metrics-{w}-")})
                procs.append(proc)
                proxies[w] = (proc, f"http://127.0.0.1:{info['port']}")
            direct_url = f"http://127.0.0.1:{ports['alpha']}/v1/chat/completions"
            print(f"router scoring time (load-test-keyword, 1 instruction x 2 candidates): p50 {scoring_ms():.4f} ms")
            for w, (proc, base) in proxies.items():      # up, then warm: every worker, both paths
                wait_until_up(f"{base}/health")
                asyncio.run(level(f"{base}/v1/chat/completions", 8, 64, stream, args.request_timeout))
                print(f"proxy with {w} worker(s): RSS at start {rss_mb(proc.pid):.1f} MiB")
            direct = asyncio.run(level(direct_url, 1, 100, stream, args.request_timeout))
            print(f"direct to upstream, concurrency 1: p50 {direct['lat_p50']:.2f} ms, p99 {direct['lat_p99']:.2f} ms")
            print(f"mode: {args.mode}; cpu/req and RSS cover every process of the proxy")
            print(f"{'rep':>3} {'conc':>5} {'wrk':>3} {'n':>5} {'ok':>5} {'lost':>4} {'hung':>4} {'req/s':>7} "
                  f"{'lat p50':>8} {'lat p99':>8} {'route p50':>9} {'route p99':>9} {'cpu/req':>7} {'RSS MiB':>8}")
            for rep in range(1, args.repeats + 1):
                for conc in [int(c) for c in args.levels.split(",")]:
                    for w, (proc, base) in proxies.items():
                        if time.monotonic() - start > args.time_limit:
                            print(f"time limit of {args.time_limit:.0f} s reached; stopping")
                            return
                        cpu0 = cpu_s(proc.pid)
                        r = asyncio.run(level(f"{base}/v1/chat/completions", conc, max(args.requests, 2 * conc),
                                              stream, args.request_timeout))
                        r["cpu_ms"] = (cpu_s(proc.pid) - cpu0) * 1e3 / r["n"]
                        print(f"{rep:>3} {conc:>5} {w:>3} {r['n']:>5} {r['ok']:>5} {r['lost']:>4} {r['hung']:>4} "
                              f"{r['rps']:>7.1f} {r['lat_p50']:>8.2f} {r['lat_p99']:>8.2f} {r['route_p50']:>9.3f} "
                              f"{r['route_p99']:>9.3f} {r['cpu_ms']:>7.2f} {rss_mb(proc.pid):>8.1f}", flush=True)
                        for reason in r["reasons"]:
                            print(f"      lost: {reason}")
            print(f"proxy added latency at concurrency 1 is about lat p50 (conc 1) − {direct['lat_p50']:.2f} ms")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
