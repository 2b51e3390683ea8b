"""`modelsat serve --zoo DIR` through the real entry point, over loopback upstreams: a model added to the folder
while a bounded load runs (concurrency 16) is taken in without a restart, with no request failing; a removed
model stops being served; a request in flight finishes on the zoo it began with. Run with -s to see the load
figures."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.aptitude.shipped import shipped_test
from modelsat.aptitude.zoo_dir import add_model, init_zoo, remove_model
from modelsat.serve.loopback import LoopbackServer, StubUpstream, completion

MODELSAT = Path(sys.executable).with_name("modelsat")
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "modelsat" / "shipped" / "default_zoo"
THREE = ["Meta-Llama-3_1-8B", "Qwen1.5-7B-Chat", "Mixtral-8x7B-Instruct-v0.1"]
KEY = "sk-reload-test-client-42"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROMPTS = ["Solve the equation x^2 = 4 for x.", "Which empire fell in 476?", "What does the mitochondrion do?",
           "Explain supply and demand in one sentence."]


class Served:
    """`modelsat serve --zoo DIR` as a subprocess; every line it prints is read (so its pipe never fills) and
    a line can be awaited."""

    def __init__(self, zoo: Path):
        self.proc = subprocess.Popen([str(MODELSAT), "serve", "--zoo", str(zoo), "--host", "127.0.0.1", "--port", "0",
                                      "--log-level", "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=dict(os.environ, MODELSAT_CLIENT_KEY=KEY))
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = "http://127.0.0.1:" + self.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")               # the process ended

    def wait_for(self, pattern: str, limit_s: float = 600) -> re.Match:
        """The first line from now on matching `pattern` (fails if the process ends or `limit_s` passes)."""
        while True:
            line = self.lines.get(timeout=limit_s)
            self.seen.append(line)
            if not line:
                raise AssertionError("modelsat serve ended:\n" + "".join(self.seen[-40:]))
            m = re.search(pattern, line)
            if m:
                return m

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


@contextmanager
def zoo_served(tmp_path: Path, names: list[str], extra_apps: dict | None = None):
    """(served proxy, zoo folder, {name: upstream server}) for shipped profiles of `names`, each behind its own
    loopback stub upstream; `extra_apps` are upstreams started but not yet in the zoo."""
    with ExitStack() as stack:
        apps = {n: StubUpstream(n) for n in names}
        apps.update(extra_apps or {})
        servers = {n: stack.enter_context(LoopbackServer(a, access_log=False, log_level="error"))
                   for n, a in apps.items()}
        zoo = tmp_path / "zoo"
        init_zoo(zoo)
        for n in names:
            add_model(zoo, SHIPPED / f"{n}.json", f"{servers[n].url}/v1", {"input": 0.1, "output": 0.2})
        served = Served(zoo)
        stack.callback(served.stop)
        yield served, zoo, servers


def dominant_profile(folder: Path, name: str) -> Path:
    """A profile right on every item of every subject of the shipped test: the router's choice for anything."""
    test = shipped_test()
    return Profile(name, test.version, {s: SubjectScore(1.0, 20) for s in test.subject_names}).save(
        folder / f"{name}-taken.json")


def chat(url: str, text: str, client=httpx) -> httpx.Response:
    return client.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=300,
                       json={"model": "modelsat", "messages": [{"role": "user", "content": text}]})


async def load_across(url: str, change, concurrency: int = 16, after: int = 64) -> dict:
    """Requests at `concurrency` until `change()` (awaited once `after` requests have ended) has returned and
    `after` more have ended: every status, latency and chosen model, before and after the change."""
    results: list[tuple[float, int, str, float]] = []        # (end time, status, model, latency s)
    changed_at: list[float] = []
    enough = asyncio.Event()

    async def worker(client: httpx.AsyncClient, w: int) -> None:
        i = w
        while not enough.is_set():
            t0 = time.perf_counter()
            try:
                r = await client.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=300, json={
                    "model": "modelsat", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
                status, model = r.status_code, r.headers.get("x-modelsat-model", "")
            except httpx.HTTPError as exc:
                status, model = -1, type(exc).__name__
            results.append((time.perf_counter(), status, model, time.perf_counter() - t0))
            i += concurrency
            if changed_at and sum(1 for r in results if r[0] > changed_at[0]) >= after:
                enough.set()

    async def changer() -> None:
        while len(results) < after:
            await asyncio.sleep(0.05)     # the load's own pace; the figures below say how it went
        await change()
        changed_at.append(time.perf_counter())

    t_start = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        await asyncio.gather(changer(), *(worker(client, w) for w in range(concurrency)))
    wall = time.perf_counter() - t_start
    lat = sorted(r[3] for r in results)
    return {"requests": len(results), "failed": sum(1 for r in results if r[1] != 200), "wall_s": wall,
            "throughput_rps": len(results) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "max_ms": 1000 * lat[-1],
            "after_change": [r[2] for r in results if r[0] > changed_at[0]],
            "statuses": sorted({r[1] for r in results})}


def test_a_model_added_while_serving_under_load_is_routed_to_and_no_request_fails(tmp_path):
    star = StubUpstream("star")
    with zoo_served(tmp_path, THREE, {"star": star}) as (served, zoo, servers):
        profile = dominant_profile(tmp_path, "star")
        timing = {}

        async def add_fourth() -> None:
            t0 = time.perf_counter()
            add = await asyncio.create_subprocess_exec(str(MODELSAT), "zoo", "add", str(zoo), str(profile),
                                                       "--base-url", f"{servers['star'].url}/v1", "--price", "0.3")
            assert await add.wait() == 0
            await asyncio.to_thread(served.wait_for, r"zoo .* reloaded: 4 models \(added: star")
            timing["add_to_taken_in_s"] = time.perf_counter() - t0

        figures = asyncio.run(load_across(served.url, add_fourth))
        next_one = chat(served.url, "Which empire fell in 476?")
    print(f"\nzoo change under load (concurrency 16, shipped router, loopback stubs): {figures['requests']} requests "
          f"in {figures['wall_s']:.1f} s ({figures['throughput_rps']:.1f}/s), failed {figures['failed']}, latency "
          f"p50 {figures['p50_ms']:.0f} ms p99 {figures['p99_ms']:.0f} ms max {figures['max_ms']:.0f} ms; "
          f"`zoo add` to taken in {timing['add_to_taken_in_s']:.1f} s; {len(figures['after_change'])} requests "
          f"after it, {figures['after_change'].count('star')} of them routed to the new model")
    assert figures["failed"] == 0, figures["statuses"]
    assert next_one.status_code == 200 and next_one.headers["x-modelsat-model"] == "star"
    assert star.requests >= 1


def test_a_removed_model_is_no_longer_served(tmp_path):
    with zoo_served(tmp_path, THREE) as (served, zoo, _):
        remove_model(zoo, "Qwen1.5-7B-Chat")
        served.wait_for(r"reloaded: 2 models \(added: none; removed: Qwen1\.5-7B-Chat\)")
        models = httpx.get(f"{served.url}/v1/models", headers=AUTH).json()
        named = httpx.post(f"{served.url}/v1/chat/completions", headers=AUTH, timeout=60, json={
            "model": "Qwen1.5-7B-Chat", "messages": [{"role": "user", "content": "hi"}]})
    assert "Qwen1.5-7B-Chat" not in {m["id"] for m in models["data"]}
    assert named.status_code == 404


class HeldUpstream:
    """An OpenAI-compatible upstream that answers only once `release` is set (`arrived` says a request is in)."""

    def __init__(self, name: str):
        self.name, self.arrived, self.release = name, threading.Event(), threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})      # lifespan.startup / lifespan.shutdown
                if kind == "lifespan.shutdown":
                    return
        while (await receive()).get("more_body"):
            pass
        self.arrived.set()
        await asyncio.to_thread(self.release.wait)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(completion(self.name, "late answer")).encode()})


def test_a_request_in_flight_finishes_on_the_zoo_it_began_with(tmp_path):
    held = HeldUpstream("Qwen1.5-7B-Chat")
    names = ["Meta-Llama-3_1-8B", "Mixtral-8x7B-Instruct-v0.1"]
    with ExitStack() as stack:
        upstream = stack.enter_context(LoopbackServer(held, access_log=False, log_level="error"))
        with zoo_served(tmp_path, names) as (served, zoo, _):
            add_model(zoo, SHIPPED / "Qwen1.5-7B-Chat.json", f"{upstream.url}/v1", {"input": 0.1, "output": 0.1})
            served.wait_for(r"reloaded: 3 models")
            with httpx.Client() as client:
                box: dict = {}
                t = threading.Thread(target=lambda: box.update(r=client.post(
                    f"{served.url}/v1/chat/completions", headers=AUTH, timeout=300,
                    json={"model": "Qwen1.5-7B-Chat", "messages": [{"role": "user", "content": "hi"}]})))
                t.start()
                assert held.arrived.wait(300)
                remove_model(zoo, "Qwen1.5-7B-Chat")
                served.wait_for(r"reloaded: 2 models")
                held.release.set()
                t.join(300)
    assert box["r"].status_code == 200 and box["r"].json()["choices"][0]["message"]["content"] == "late answer"
