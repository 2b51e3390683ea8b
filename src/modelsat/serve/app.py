"""The OpenAI-compatible routing proxy (FastAPI): chat completions routed or passed through, /v1/models,
/v1/route, liveness, readiness and Prometheus metrics. Build it with `make_app(config)`.

The zoo (upstreams, routing among their profiles, aliases) is an immutable snapshot. Given a `watch` (a zoo
folder's index, `modelsat serve --zoo DIR`), the proxy checks it every RELOAD_POLL_S seconds and, on a change,
builds a new snapshot beside the old and swaps it in at once: a request keeps the snapshot it began with, and
the old one is closed when its last request ends. A change that does not load (a bad profile, a missing key
variable) is logged and the proxy keeps serving the zoo it had."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect

from modelsat.errors import ModelsatError
from modelsat.routers.base import Router, RouterError
from modelsat.serve.auth import AuthMiddleware, BodyLimitMiddleware, KeyChecker, error_body
from modelsat.serve.config import ROUTING_MODEL, Alias, ServeConfig
from modelsat.serve.metrics import ProxyMetrics
from modelsat.serve.request_body import BadRequest, encode_for_upstream, parse_request_body
from modelsat.serve.routing import (H_MAX_COST, H_POLICY, KNOB_HEADERS, AliasRoute, Decision, HeaderError,
                                    OverMaxCost, RoutePolicy, RoutingService, instruction_of, price_of,
                                    request_policy, request_tokens)
from modelsat.serve.upstream import (AllUpstreamsFailed, Opened, Upstream, UsageScanner, build_upstreams,
                                     open_first_available, relay)

log = logging.getLogger("modelsat.serve")
H_MODEL, H_ROUTING_MS, H_COST = "x-modelsat-model", "x-modelsat-routing-ms", "x-modelsat-cost-usd"
H_P, H_EXPECTED_COST = "x-modelsat-p", "x-modelsat-expected-cost"
POLICY_HEADERS = (H_POLICY, H_MAX_COST, *KNOB_HEADERS.values())
MAX_ECHO = 64          # characters of a client-chosen name quoted back in an error
RELOAD_POLL_S = 1.0    # how often a watched zoo folder's index is checked for a change


class ClientGone(Exception):
    pass


class QueryStringFilter(logging.Filter):
    """Drops the query string from uvicorn's access-log lines: a key sent as `?api_key=` must not be logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?[query removed]", *args[3:])
        return True


ACCESS_LOG_FILTER = QueryStringFilter()


def quoted(name: str) -> str:
    """`name` as an error message may quote it: repr, cut to MAX_ECHO characters."""
    if len(name) <= MAX_ECHO:
        return repr(name)
    return f"{name[:MAX_ECHO]!r}... ({len(name)} characters)"


def api_error(status: int, message: str, type_: str = "invalid_request_error", code: Optional[str] = None,
              headers: Optional[dict] = None) -> Response:
    return Response(error_body(message, type_, code), status_code=status, media_type="application/json",
                    headers=headers)


async def _until_disconnect(request: Request, coro):
    """`await coro`, cancelling it if the client disconnects first (raises ClientGone)."""
    task = asyncio.ensure_future(coro)

    async def watch():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if task.cancelled() or not task.done():
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        raise ClientGone()
    return task.result()


class RelayResponse(StreamingResponse):
    """A streamed upstream answer whose upstream connection is closed however the response ends (even when
    the client leaves before the first chunk is relayed, which never starts the relay generator)."""

    def __init__(self, opened: Opened, content, **kwargs):
        super().__init__(content, **kwargs)
        self.opened = opened

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.opened.aclose()


def load_router(cfg: ServeConfig) -> Optional[Router]:
    """The router in the config's folder, or None when the config names none."""
    if cfg.router is None:
        return None
    if not cfg.router.is_dir():
        raise ModelsatError(f"router: {cfg.router} is not a folder (expected one written by Router.save)")
    return Router.load(cfg.router)


class ZooWatch(Protocol):
    """Where a served zoo can change: `changed()` says whether it did since the last call (cheap, on the event
    loop); `load()` reads the new config (in a worker thread; raises ModelsatError on bad input)."""
    where: str

    def changed(self) -> bool: ...

    def load(self) -> ServeConfig: ...


@dataclass(eq=False)
class ZooSnapshot:
    """One zoo as the proxy serves it, never changed once built; `users` counts the requests holding it."""
    upstreams: list[Upstream]
    by_name: dict[str, Upstream]
    routing: Optional[RoutingService]
    aliases: dict[str, AliasRoute]          # routing name -> policy and models (budgets fitted at start)
    deadlines: dict[str, float]
    users: int = 0
    retired: bool = False
    tasks: set = field(default_factory=set)


def build_snapshot(cfg: ServeConfig, router: Optional[Router], env, lock: threading.Lock,
                   previous: Optional[ZooSnapshot] = None) -> ZooSnapshot:
    """The zoo of `cfg` (routing not yet started); a model whose entry is unchanged since `previous` keeps its
    circuit breaker, so a reload does not forget an upstream that is down."""
    upstreams = build_upstreams(cfg, env)
    if previous is not None:
        for u in upstreams:
            old = previous.by_name.get(u.name)
            if old is not None and old.cfg == u.cfg:
                u.breaker = old.breaker
    routing = RoutingService(router, upstreams, cfg.max_route_batch, lock) if router is not None else None
    aliases = {ROUTING_MODEL: AliasRoute(RoutePolicy())}
    aliases.update({k: alias_route(k, a, routing) for k, a in cfg.aliases.items()})
    deadlines = {ROUTING_MODEL: cfg.deadlines.request_s}
    deadlines.update({k: a.deadline_s or cfg.deadlines.request_s for k, a in cfg.aliases.items()})
    return ZooSnapshot(upstreams, {u.name: u for u in upstreams}, routing, aliases, deadlines)


def alias_route(name: str, alias: Alias, routing: Optional[RoutingService]) -> AliasRoute:
    """A configured alias as the proxy routes it; a policy that weighs cost needs a router that gives P(good
    answer), and a model without a price is logged (the policy counts it as free)."""
    from modelsat.policies import check_knobs
    policy = RoutePolicy(alias.policy, check_knobs(alias.policy, alias.knobs), alias.max_cost)
    if routing is not None and (alias.policy != "max-quality" or alias.max_cost is not None):
        if alias.policy != "max-quality" and not routing.probabilities:
            raise ModelsatError(f"aliases.{name}.policy: {alias.policy} weighs P(good answer) against cost, but the "
                                f"router {routing.router.name!r} gives scores, not probabilities: calibrate it "
                                "(Router.calibrate on validation items, then save it) or use max-quality")
        unpriced = [u.name for u in routing.upstreams
                    if (alias.candidates is None or u.name in alias.candidates) and price_of(u) is None]
        if unpriced:
            log.warning("aliases.%s: no price for %s; its policy counts them as free (give `price:`)", name,
                        ", ".join(unpriced))
    return AliasRoute(policy, alias.candidates)


def log_budget_fits(snap: ZooSnapshot) -> None:
    """Logs the λ fitted for each budget routing name, and what it was fitted on."""
    for name, a in snap.aliases.items():
        f = a.policy.fit
        if f is not None:
            log.info("%s: budget $%g per request -> lambda %.4g (mean expected cost $%.6g, mean P %.3f on %s)%s", name,
                     f.budget, f.lam, f.mean_cost, f.mean_p, a.policy.fitted_on,
                     "" if f.met else "; not met: even the cheapest models cost more")


def make_app(cfg: ServeConfig, router: Optional[Router] = None, environ: Optional[dict] = None,
             watch: Optional[ZooWatch] = None,
             on_reload: Optional[Callable[[ZooSnapshot, ZooSnapshot], None]] = None) -> FastAPI:
    """The proxy for `cfg`; `router` overrides the config's router folder (tests, embedding). With `watch`, a
    change to the zoo is taken in while serving (its models only: router, auth, limits and server stay as
    they started)."""
    env = os.environ if environ is None else environ
    if router is None:
        router = load_router(cfg)
    router_lock = threading.Lock()
    metrics = ProxyMetrics()
    checker = None if cfg.auth.allow_unauthenticated else KeyChecker(cfg.client_key_hashes(env))
    logging.getLogger("uvicorn.access").addFilter(ACCESS_LOG_FILTER)       # adding it twice keeps one
    state: dict = {"zoo": build_snapshot(cfg, router, env, router_lock)}

    def acquire() -> ZooSnapshot:
        snap = state["zoo"]
        snap.users += 1
        return snap

    def release(snap: ZooSnapshot) -> None:
        snap.users -= 1
        if snap.retired and snap.users == 0:
            close(snap)

    def close(snap: ZooSnapshot) -> None:
        if snap.routing is not None:
            task = asyncio.get_running_loop().create_task(snap.routing.stop())
            snap.tasks.add(task)                      # held until done (the loop keeps only weak references)
            task.add_done_callback(snap.tasks.discard)

    async def take_in_changes() -> None:
        assert watch is not None
        while True:
            await asyncio.sleep(RELOAD_POLL_S)
            if not watch.changed():
                continue
            old = state["zoo"]
            try:
                new_cfg = await anyio.to_thread.run_sync(watch.load)
                new = build_snapshot(new_cfg, router, env, router_lock, previous=old)
                if new.routing is not None:
                    await new.routing.start()          # new candidates prepared before any request sees them
                    new.aliases = await new.routing.fit_budgets(new.aliases)
                    log_budget_fits(new)
            except (ModelsatError, RouterError) as exc:
                log.error("zoo %s changed but was not taken in; still serving its %d models: %s", watch.where,
                          len(old.upstreams), exc)
                continue
            state["zoo"] = new
            app.state.upstreams, app.state.routing = new.upstreams, new.routing
            old.retired = True
            if old.users == 0:
                close(old)
            added = sorted(set(new.by_name) - set(old.by_name))
            removed = sorted(set(old.by_name) - set(new.by_name))
            log.info("zoo %s reloaded: %d models (added: %s; removed: %s)", watch.where, len(new.upstreams),
                     ", ".join(added) or "none", ", ".join(removed) or "none")
            if on_reload is not None:
                on_reload(old, new)

    @asynccontextmanager
    async def lifespan(_app):
        # keep-alive shorter than uvicorn's 5 s default, so the proxy does not reuse a connection the upstream is closing
        limits = httpx.Limits(max_connections=2048, max_keepalive_connections=256, keepalive_expiry=2.0)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False) as client:
            state["client"] = client
            first = state["zoo"]
            if first.routing is not None:
                await first.routing.start()
                first.aliases = await first.routing.fit_budgets(first.aliases)
                log_budget_fits(first)
            watcher = asyncio.create_task(take_in_changes()) if watch is not None else None
            try:
                yield
            finally:
                if watcher is not None:
                    watcher.cancel()
                snap = state["zoo"]
                if snap.routing is not None:
                    await snap.routing.stop()

    app = FastAPI(title="modelsat proxy", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  redirect_slashes=False)
    app.state.metrics, app.state.upstreams, app.state.routing = metrics, state["zoo"].upstreams, state["zoo"].routing
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.limits.max_body_bytes)
    app.add_middleware(AuthMiddleware, check=checker)     # added last = outermost: auth before anything

    def on_failure(up: Upstream, reason: str) -> None:
        metrics.upstream_errors.labels(up.name, reason.split(" (")[0]).inc()
        metrics.circuit_open.labels(up.name).set(1 if up.breaker.is_open else 0)

    async def read_json(request: Request) -> dict | Response:
        try:
            async with asyncio.timeout(cfg.limits.body_timeout_s):
                raw = await request.body()
        except TimeoutError:
            return api_error(408, f"request body not received within {cfg.limits.body_timeout_s:g} s "
                                  "(limits.body_timeout_s)", code="request_timeout", headers={"connection": "close"})
        except ClientDisconnect:             # the client left mid-body: nobody to answer, nothing to log
            metrics.disconnects.inc()
            return Response(status_code=499)
        try:
            return parse_request_body(raw, cfg.limits)
        except BadRequest as exc:
            return bad_request(exc)

    def bad_request(exc: BadRequest) -> Response:
        return Response(json.dumps({"error": {"message": exc.message, "type": "invalid_request_error",
                                              "param": exc.param, "code": exc.code}}),
                        status_code=400, media_type="application/json")

    def header_error(header: str, message: str, code: str = "invalid_header") -> Response:
        return Response(json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": header,
                                              "code": code}}), status_code=400, media_type="application/json")

    async def decide(snap: ZooSnapshot, requested: str, body: dict, request: Request) -> Decision | Response:
        routing = snap.routing
        if routing is None:
            return api_error(503, f"model {requested!r} routes, but this proxy has no router configured "
                                  "(set `router:` in the config), or name one of the models",
                             "server_error", "no_router")
        alias = snap.aliases[requested]
        try:
            policy = request_policy(request.headers, alias.policy, routing.probabilities)
        except HeaderError as exc:
            return header_error(exc.header, exc.message)
        try:
            decision = await routing.decide(instruction_of(body["messages"]), policy, alias.only,
                                            request_tokens(body))
        except OverMaxCost as exc:
            where = H_MAX_COST if H_MAX_COST in request.headers else f"aliases.{requested}.max_cost"
            return header_error(where, f"{where}: {exc}", "over_max_cost")
        metrics.routing.observe(decision.overhead_ms / 1000)
        return decision

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        snap = state["zoo"]
        routing, upstreams = snap.routing, snap.upstreams
        problems = []
        if routing is None:
            problems.append("no router configured")
        if not upstreams:
            problems.append("no upstreams")
        body = {"ready": not problems, "router": router.name if router is not None else None,
                "models": [u.name for u in upstreams],
                "circuit_open": [u.name for u in upstreams if u.breaker.is_open], "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics")
    async def prometheus():
        for u in state["zoo"].upstreams:
            metrics.circuit_open.labels(u.name).set(1 if u.breaker.is_open else 0)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models():
        snap = state["zoo"]
        ids = [*snap.aliases, *snap.by_name] if snap.routing is not None else list(snap.by_name)
        return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "modelsat"}
                                           for i in ids]}

    @app.post("/v1/route")
    async def route(request: Request):
        snap = acquire()
        try:
            return await route_with(snap, request)
        finally:
            release(snap)

    async def route_with(snap: ZooSnapshot, request: Request):
        aliases = snap.aliases
        body = await read_json(request)
        if isinstance(body, Response):
            return body
        requested = body.get("model", ROUTING_MODEL)
        if not isinstance(requested, str) or requested not in aliases:
            return api_error(400, f"'model' must be a routing name ({', '.join(aliases)}), got "
                                  f"{quoted(str(requested))}")
        decision = await decide(snap, requested, body, request)
        if isinstance(decision, Response):
            return decision
        metrics.requests.labels("route", "200").inc()
        return {"requested": requested, "router": router.name, **decision.record()}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        snap = acquire()
        try:
            response = await answer_chat(snap, request)
        finally:
            release(snap)
        if not isinstance(response, RelayResponse):       # a stream is counted when it ends
            metrics.requests.labels("chat", str(response.status_code)).inc()
        return response

    async def answer_chat(snap: ZooSnapshot, request: Request) -> Response:
        aliases, by_name, deadlines = snap.aliases, snap.by_name, snap.deadlines
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        body = await read_json(request)
        if isinstance(body, Response):
            return body
        requested = body.get("model")
        routing_ms: Optional[float] = None
        if not isinstance(requested, str):
            return api_error(400, "'model' must be a string")
        deadline = arrived + deadlines.get(requested, cfg.deadlines.request_s)
        decision: Optional[Decision] = None
        if requested in aliases:
            decision = await decide(snap, requested, body, request)
            if isinstance(decision, Response):
                return decision
            ranking, routing_ms = decision.ranking, decision.overhead_ms
        elif requested in by_name:
            sent = next((h for h in POLICY_HEADERS if h in request.headers), None)
            if sent is not None:
                return header_error(sent, f"{sent}: routing headers apply to routing names "
                                          f"({', '.join(aliases)}), not to the model {quoted(requested)} named")
            ranking = [by_name[requested]]          # a real model name: that model or nothing
        else:
            names = ", ".join([*aliases, *by_name]) if snap.routing is not None else ", ".join(by_name)
            return api_error(404, f"unknown model {quoted(requested)}; available: {names}", code="model_not_found")
        stream = body.get("stream") is True
        try:
            bodies = {u.name: encode_for_upstream(body, u.upstream_model) for u in ranking}
        except BadRequest as exc:
            return bad_request(exc)
        try:
            opened: Opened = await _until_disconnect(request, open_first_available(
                state["client"], ranking, bodies, stream, cfg.retries, deadline, cfg.limits.max_response_bytes,
                on_failure))
        except ClientGone:
            metrics.disconnects.inc()
            return Response(status_code=499)
        except AllUpstreamsFailed as exc:
            if exc.rate_limited:
                headers = {"retry-after": str(math.ceil(exc.retry_after))} if exc.retry_after is not None else None
                return api_error(429, str(exc), "rate_limit_error", "rate_limited", headers)
            status = 504 if exc.timeout else 502
            return api_error(status, str(exc), "upstream_error", "upstream_unavailable")
        up = opened.upstream
        metrics.upstream_latency.labels(up.name).observe(opened.ttfb_s)
        metrics.chosen.labels(up.name, requested).inc()
        headers = {H_MODEL: up.name}
        if routing_ms is not None:
            headers[H_ROUTING_MS] = f"{routing_ms:.3f}"
        if decision is not None:
            p, expected = decision.of(up)
            headers[H_POLICY] = decision.policy.policy
            if p is not None:
                headers[H_P] = f"{p:.4f}"
            if expected is not None:
                headers[H_EXPECTED_COST] = f"{expected:.8f}"
                if opened.status < 300:
                    metrics.expected_cost.labels(up.name).inc(expected)
        if opened.fallbacks:
            headers["x-modelsat-fallbacks"] = str(opened.fallbacks)
        content_type = opened.response.headers.get("content-type", "application/json")
        if opened.rest is None and (not stream or opened.status >= 300):
            return finish_whole(opened, headers, content_type)
        scanner = UsageScanner()

        def done(error: Optional[str]) -> None:
            cost = up.cost_usd(scanner.usage)
            metrics.record_usage(up.name, scanner.usage, cost)
            metrics.requests.labels("chat", "200" if error is None else "stream_error").inc()
            if error is not None:
                metrics.streams_cut.labels(up.name, error).inc()

        stream_s = cfg.deadlines.stream_s
        return RelayResponse(opened, relay(opened, scanner, done, arrived + stream_s, stream_s),
                             status_code=opened.status, media_type=content_type, headers=headers)

    def finish_whole(opened: Opened, headers: dict, content_type: str) -> Response:
        up = opened.upstream
        content = up.redact(opened.first)
        if opened.status < 300:
            try:
                data = json.loads(content)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, dict):
                data["model"] = up.name
                usage = data.get("usage")
                cost = up.cost_usd(usage)
                metrics.record_usage(up.name, usage, cost)
                if cost is not None:
                    headers[H_COST] = f"{cost:.8f}"
                try:
                    content = json.dumps(data).encode()
                except RecursionError:       # an upstream's reply nested past re-encoding: relayed as it came
                    pass
        return Response(content, status_code=opened.status, media_type=content_type, headers=headers)

    from modelsat.serve.ui import mount_console      # the web console at /ui and its JSON API (serve/ui.py)
    mount_console(app, watch)
    return app
