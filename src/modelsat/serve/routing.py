"""Routing decisions for the proxy: the conversation's instruction, scored by the router off the event loop, and a
policy (`modelsat.policies`) that weighs each candidate's P(good answer) against its expected cost.

Concurrent requests are scored together (one router call per batch, in a worker thread), so a model-based
router pays its fixed cost once per batch and never runs two calls at once (tokenizers and torch modules are not
safe to call from several threads).

A routing name (`modelsat` or an alias) carries a `RoutePolicy`; a request may override it with headers
(`request_policy`). A budget's λ is fitted once per routing name when the zoo is (re)loaded, on the prompts of
the shipped aptitude test (`fit_budgets`), never per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import anyio
import numpy as np

from modelsat.policies import (DEFAULT_OUTPUT_TOKENS, BudgetFit, KnobError, check_knobs, expected_cost, fit_budget,
                               gives_probabilities, prompt_tokens, rank, split_price)
from modelsat.routers.base import Router, RouterError
from modelsat.serve.upstream import Upstream

H_POLICY = "x-modelsat-policy"
H_MAX_COST = "x-modelsat-max-cost"
KNOB_HEADERS = {"lambda": "x-modelsat-lambda", "delta": "x-modelsat-delta", "tau": "x-modelsat-tau"}
BUDGET_ITEMS_PER_SUBJECT = 2      # aptitude-test items per subject a budget's λ is fitted on (50 subjects: 100)
FIT_CHUNK = 8                     # prompts scored per router call while fitting, so requests are not held up


def instruction_of(messages: list) -> str:
    """The text routed on: the last user message (its text parts when content is a list)."""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text(msg.get("content"))
    return ""


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def request_tokens(body: dict) -> tuple[int, int]:
    """(prompt tokens, expected output tokens) of a chat request, for its expected cost: every message's text at
    about 4 characters a token, and DEFAULT_OUTPUT_TOKENS out, or the request's max_tokens when lower."""
    text = "\n".join(_text(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict))
    out = DEFAULT_OUTPUT_TOKENS
    for key in ("max_completion_tokens", "max_tokens"):
        cap = body.get(key)
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            out = min(out, cap)
    return prompt_tokens(text), out


def price_of(upstream: Upstream) -> Optional[tuple[float, float]]:
    """(input, output) USD per million tokens: the config's `price`, else the profile's `price_per_mtok`."""
    p = upstream.cfg.price_in_out
    if p is not None:
        return p.input, p.output
    return split_price(upstream.profile.notes.get("price_per_mtok")) if upstream.profile is not None else None


@dataclass(frozen=True)
class RoutePolicy:
    """How a routing name chooses: a policy of `modelsat.policies`, its checked knobs ({"lambda", "delta", "tau",
    "budget"}), an optional cap on a request's expected cost (USD), and, for a budget, the λ fitted at start."""
    policy: str = "max-quality"
    knobs: dict = field(default_factory=dict)
    max_cost: Optional[float] = None
    fit: Optional[BudgetFit] = None
    fitted_on: Optional[str] = None

    def params(self) -> dict:
        """The knobs as the JSON answers show them; a budget adds its fitted λ and what it was fitted on."""
        out = dict(self.knobs)
        if self.policy == "budget" and self.fit is not None:
            f = self.fit
            out.update({"lambda": f.lam, "met": f.met, "fitted_on": self.fitted_on, "fitted_items": f.items,
                        "fitted_mean_cost": f.mean_cost, "fitted_mean_p": f.mean_p})
        return out


@dataclass(frozen=True)
class AliasRoute:
    """A routing name: its policy and the models it routes among (None: every model with a profile)."""
    policy: RoutePolicy
    only: Optional[list[str]] = None


class HeaderError(Exception):
    """A routing header with a bad value; `header` names it."""

    def __init__(self, header: str, message: str):
        super().__init__(message)
        self.header = header
        self.message = message


def request_policy(headers: Mapping[str, str], base: RoutePolicy, probabilities: bool) -> RoutePolicy:
    """The policy of one request: the routing name's `base`, overridden by its headers (x-modelsat-policy, a knob
    header, x-modelsat-max-cost). A knob header replaces the base's knobs; a policy other than the base's starts
    with none. Raises HeaderError naming the header at fault."""
    name = headers.get(H_POLICY)
    given = {k: headers.get(h) for k, h in KNOB_HEADERS.items() if headers.get(h) is not None}
    cap = headers.get(H_MAX_COST)
    if name is None and not given and cap is None:
        return base
    policy = base.policy if name is None else name.strip().lower()
    if policy == "budget" and base.policy != "budget":
        raise HeaderError(H_POLICY, f"{H_POLICY}: policy budget is fitted per routing name when the proxy starts "
                                    "(its lambda from many prompts), never per request: use a routing name whose "
                                    "policy is "
                                    f"budget, or send {H_MAX_COST} (a cap on this request) or tradeoff with "
                                    f"{KNOB_HEADERS['lambda']}")
    if given:
        knobs = given
    else:
        knobs = dict(base.knobs) if policy == base.policy else {}
    try:
        knobs = check_knobs(policy, knobs)
    except KnobError as exc:
        header = H_POLICY if exc.knob in ("policy", "budget") else KNOB_HEADERS[exc.knob]
        raise HeaderError(header, f"{header}: {exc}") from None
    if policy != "max-quality" and not probabilities:
        raise HeaderError(H_POLICY, f"{H_POLICY}: policy {policy} weighs P(good answer) against cost, but this "
                                    "proxy's router gives scores, not probabilities (it is not calibrated)")
    max_cost = base.max_cost
    if cap is not None:
        try:
            max_cost = float(cap)
        except ValueError:
            raise HeaderError(H_MAX_COST, f"{H_MAX_COST}: expected a number of USD, got "
                                          f"{cap[:32]!r}") from None
        if not np.isfinite(max_cost) or max_cost < 0:
            raise HeaderError(H_MAX_COST, f"{H_MAX_COST}: expected a finite number of USD >= 0, got {cap[:32]!r}")
    return RoutePolicy(policy, knobs, max_cost, base.fit if policy == "budget" else None,
                       base.fitted_on if policy == "budget" else None)


class OverMaxCost(Exception):
    """No candidate's expected cost is within the request's cap."""


@dataclass
class Decision:
    """One routing decision: the models in the order they are tried (the policy's choice first, then its choice
    among the rest), each one's P and expected cost, and the models over the cost cap, never tried."""
    ranking: list[Upstream]
    scores: list[float]                   # the number ranked by: P, or the raw score of a router without P
    p: Optional[list[float]]              # P(good answer) in ranking order; None: the router gives no P
    expected_cost: list[Optional[float]]  # USD in ranking order; None where the price is unknown (counted as 0)
    over_cap: list[tuple[Upstream, float, Optional[float]]]   # (model, score, USD) over max_cost
    policy: RoutePolicy
    prompt_tokens: int
    output_tokens: int
    overhead_ms: float
    policy_ms: float

    def of(self, upstream: Upstream) -> tuple[Optional[float], Optional[float]]:
        """(P, expected USD) of a model of the ranking (the one that answered)."""
        i = self.ranking.index(upstream)
        return (None if self.p is None else self.p[i]), self.expected_cost[i]

    def record(self) -> dict:
        """The decision as POST /v1/route answers it (docs/reference/http-api.md)."""
        chosen = self.ranking[0]
        p, cost = self.of(chosen)
        rows = [{"model": u.name, "p": None if self.p is None else self.p[i],
                 "expected_cost_usd": self.expected_cost[i], "score": self.scores[i], "price_per_mtok": _price_json(u),
                 "eligible": True}
                for i, u in enumerate(self.ranking)]
        rows += [{"model": u.name, "p": s if self.p is not None else None, "expected_cost_usd": c, "score": s,
                  "price_per_mtok": _price_json(u), "eligible": False} for u, s, c in self.over_cap]
        return {"model": chosen.name, "chosen": chosen.name, "policy": self.policy.policy,
                "params": self.policy.params(), "max_cost_usd": self.policy.max_cost,
                "probabilities": self.p is not None, "p": p, "expected_cost_usd": cost,
                "prompt_tokens": self.prompt_tokens, "expected_output_tokens": self.output_tokens,
                "routing_ms": round(self.overhead_ms, 3), "policy_ms": round(self.policy_ms, 4), "candidates": rows}


def _price_json(u: Upstream) -> Optional[dict]:
    price = price_of(u)
    return None if price is None else {"input": price[0], "output": price[1]}


class RoutingService:
    """Scores the routable upstreams (those with a profile) for one instruction and ranks them by a policy."""

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
        self.probabilities = gives_probabilities(router)
        prices = [price_of(u) for u in self.upstreams]
        self.price_known = np.array([p is not None for p in prices])
        self.price_in = np.array([p[0] if p else 0.0 for p in prices])
        self.price_out = np.array([p[1] if p else 0.0 for p in prices])
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

    def exclusive(self) -> threading.Lock:
        """The lock that keeps the router from being called from two threads at once: hold it (`with
        service.exclusive():`) to call the router beside the service, as the console's explain does."""
        return self._lock

    def _prepare(self) -> None:
        with self._lock:
            self.router.prepare(self.profiles)

    def _score(self, texts: list[str]) -> np.ndarray:
        """(len(texts), m): P(good answer) when the router gives it, else its raw scores."""
        from modelsat.embeddings import transient
        numbers = self.router.predict_proba if self.probabilities else self.router.score
        with self._lock, transient():   # users' instructions are embedded in memory only: no disk growth, no trace
            s = np.asarray(numbers(texts, self.profiles), dtype=np.float64)
        if s.shape != (len(texts), len(self.profiles)):
            raise RouterError(f"router {self.router.name!r}: score returned shape {s.shape}, "
                              f"expected ({len(texts)}, {len(self.profiles)})")
        return s

    def columns(self, only: Optional[Sequence[str]]) -> list[int]:
        """The positions of the routing name's models among the routable upstreams."""
        return [i for i, u in enumerate(self.upstreams) if only is None or u.name in only]

    def costs(self, keep: Sequence[int], tokens, output_tokens: int) -> np.ndarray:
        """Expected USD of each kept candidate for prompts of `tokens` tokens ((k,) for a number, (n, k) for (n,))."""
        return expected_cost(tokens, self.price_in[keep], self.price_out[keep], output_tokens)

    async def fit_budgets(self, aliases: dict[str, AliasRoute]) -> dict[str, AliasRoute]:
        """`aliases` with every budget policy's λ fitted (`policies.fit_budget`) on the shipped aptitude test's
        prompts (BUDGET_ITEMS_PER_SUBJECT per subject) among the routing name's own models; scored once, in
        chunks, so requests to a zoo still serving are not held up for long."""
        budgets = {k: a for k, a in aliases.items() if a.policy.policy == "budget"}
        if not budgets:
            return aliases
        prompts, where = budget_fit_prompts()
        P = np.vstack([await anyio.to_thread.run_sync(self._score, prompts[i:i + FIT_CHUNK])
                       for i in range(0, len(prompts), FIT_CHUNK)])
        tokens = np.array([prompt_tokens(t) for t in prompts])
        out = dict(aliases)
        for name, a in budgets.items():
            keep = self.columns(a.only)
            fit = fit_budget(P[:, keep], self.costs(keep, tokens, DEFAULT_OUTPUT_TOKENS), a.policy.knobs["budget"])
            out[name] = dataclasses.replace(a, policy=dataclasses.replace(a.policy, fit=fit, fitted_on=where))
        return out

    async def decide(self, instruction: str, policy: RoutePolicy = RoutePolicy(),
                     only: Optional[Sequence[str]] = None, tokens: Optional[tuple[int, int]] = None) -> Decision:
        """The decision for one instruction under `policy` among `only` (None: all); `tokens` = (prompt, output)
        tokens for the expected cost (default: the instruction's, DEFAULT_OUTPUT_TOKENS). Raises OverMaxCost when
        the policy's cap leaves no candidate."""
        t0 = time.perf_counter()
        if self._queue is None:
            raise RuntimeError("RoutingService.start() was not awaited")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((instruction, fut))
        scores = await fut
        t1 = time.perf_counter()
        n_in, n_out = tokens if tokens is not None else (prompt_tokens(instruction), DEFAULT_OUTPUT_TOKENS)
        keep = self.columns(only)
        s, cost = scores[keep], self.costs(keep, n_in, n_out)
        known = self.price_known[keep]
        over: list[int] = []
        if policy.max_cost is not None:
            over = [j for j in range(len(keep)) if cost[j] > policy.max_cost]
            if len(over) == len(keep):
                cheapest = int(np.argmin(cost))
                raise OverMaxCost(f"no model's expected cost is within the cap of ${policy.max_cost:g}: the cheapest, "
                                  f"{self.upstreams[keep[cheapest]].name}, is expected to cost ${cost[cheapest]:.6g} "
                                  f"({n_in} prompt tokens, {n_out} out)")
        ok = [j for j in range(len(keep)) if j not in over]
        if not self.probabilities:
            order = np.lexsort((cost[ok], -s[ok]))       # max-quality by the router's score, ties to the cheaper
        elif policy.policy == "budget":
            order = rank(s[ok], cost[ok], "tradeoff", lam=policy.fit.lam)
        else:
            k = policy.knobs
            order = rank(s[ok], cost[ok], policy.policy, lam=k.get("lambda"), delta=k.get("delta"), tau=k.get("tau"))
        ranked = [ok[i] for i in order]
        usd = [float(cost[j]) if known[j] else None for j in range(len(keep))]
        t2 = time.perf_counter()
        return Decision([self.upstreams[keep[j]] for j in ranked], [float(s[j]) for j in ranked],
                        [float(s[j]) for j in ranked] if self.probabilities else None, [usd[j] for j in ranked],
                        [(self.upstreams[keep[j]], float(s[j]), usd[j]) for j in over], policy, n_in, n_out,
                        (t2 - t0) * 1000, (t2 - t1) * 1000)


def budget_fit_prompts() -> tuple[list[str], str]:
    """(prompts, what they are) that a budget's λ is fitted on: BUDGET_ITEMS_PER_SUBJECT items of each subject of
    the shipped aptitude test, as the test asks them (validation-like: never a user's request)."""
    from modelsat.aptitude.runner import item_prompt
    from modelsat.aptitude.shipped import shipped_test
    test = shipped_test()
    prompts = [item_prompt(s.name, it.question, it.options) for s in test.subjects
               for it in s.items[:BUDGET_ITEMS_PER_SUBJECT]]
    return prompts, (f"{len(prompts)} prompts of the shipped aptitude test {test.version} "
                     f"({BUDGET_ITEMS_PER_SUBJECT} per subject)")
