"""Routing decisions for the proxy: the conversation's instruction, scored by the router off the event loop.

Concurrent requests are scored together (one `router.score` call per batch, in a worker thread), so a
model-based router pays its fixed cost once per batch and never runs two calls at once (tokenizers and
torch modules are not safe to call from several threads).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import anyio
import numpy as np

from modelsat.routers.base import Router, RouterError, relative_costs
from modelsat.serve.upstream import Upstream


def instruction_of(messages: list) -> str:
    """The text routed on: the last user message (its text parts when content is a list)."""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content
                                 if isinstance(p, dict) and p.get("type") == "text")
    return ""


@dataclass
class Decision:
    ranking: list[Upstream]          # best first
    scores: list[float]              # router's scores, in ranking order
    adjusted: list[float]            # score − cost_weight × relative cost, in ranking order
    cost_weight: float
    overhead_ms: float


class RoutingService:
    """Ranks the routable upstreams (those with a profile) for one instruction."""

    def __init__(self, router: Router, upstreams: Sequence[Upstream], max_batch: int = 32,
                 lock: Optional[threading.Lock] = None):
        """`lock`: held around every call into the router; services that share a router (the zoo before and
        after a reload, both serving for a moment) share it, so the router never runs two calls at once."""
        self.router = router
        self._lock = lock or threading.Lock()
        self.upstreams = [u for u in upstreams if u.profile is not None]
        if not self.upstreams:
            raise RouterError("a router is configured but no model has a profile; add `profile:` to the models")
        self.profiles = [u.profile for u in self.upstreams]
        self.max_batch = max_batch
        self._queue: Optional[asyncio.Queue] = None
        self._worker: Optional[asyncio.Task] = None

    async def start(self) -> None:
        # per-candidate work (a centred router's offsets) done before the first request, not during it
        await anyio.to_thread.run_sync(self._prepare)
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            texts = [t for t, _ in batch]
            try:
                scores = await anyio.to_thread.run_sync(self._score, texts)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request, which reports it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for i, (_, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result(scores[i])

    def _prepare(self) -> None:
        with self._lock:
            self.router.prepare(self.profiles)

    def _score(self, texts: list[str]) -> np.ndarray:
        from modelsat.embeddings import transient
        with self._lock, transient():   # users' instructions are embedded in memory only: no disk growth, no trace
            s = np.asarray(self.router.score(texts, self.profiles), dtype=np.float64)
        if s.shape != (len(texts), len(self.profiles)):
            raise RouterError(f"router {self.router.name!r}: score returned shape {s.shape}, "
                              f"expected ({len(texts)}, {len(self.profiles)})")
        return s

    async def decide(self, instruction: str, cost_weight: float = 0.0,
                     only: Optional[Sequence[str]] = None) -> Decision:
        t0 = time.perf_counter()
        if self._queue is None:
            raise RuntimeError("RoutingService.start() was not awaited")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((instruction, fut))
        scores = await fut
        keep = [i for i, u in enumerate(self.upstreams) if only is None or u.name in only]
        cands = [self.upstreams[i] for i in keep]
        s = scores[keep]
        # the same rule as Router.route_indices (argmax of score − w × relative cost), extended to a ranking
        adjusted = s - cost_weight * relative_costs([u.profile for u in cands], [u.price_per_mtok for u in cands])
        order = np.argsort(-adjusted, kind="stable")
        return Decision([cands[i] for i in order], [float(s[i]) for i in order], [float(adjusted[i]) for i in order],
                        cost_weight, (time.perf_counter() - t0) * 1000)
