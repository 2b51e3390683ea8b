"""Calls to upstream models: timeouts, retries with backoff, fallback down a ranking, a circuit breaker.

Everything here happens before the first byte reaches the client, so a failure can still move on to the
next-ranked candidate; once the proxy has started answering, `relay` passes bytes through untouched and
turns a broken upstream into a clean SSE error event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Optional

import anyio
import httpx

from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError
from modelsat.serve.config import Retries, ServeConfig, Timeouts, UpstreamModel

log = logging.getLogger("modelsat.serve")
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_ERROR_BODY = 64 * 1024


class CircuitBreaker:
    """Opens after `failures` consecutive failures; while open the upstream is skipped for `cooldown_s`,
    then one trial request is let through (half-open): success closes it, failure re-opens it."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic):
        self.failures, self.cooldown_s, self.clock = failures, cooldown_s, clock
        self.consecutive = 0
        self.opened_at: Optional[float] = None
        self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at >= self.cooldown_s and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.consecutive, self.opened_at, self._trial_in_flight = 0, None, False

    def record_failure(self) -> None:
        self.consecutive += 1
        self._trial_in_flight = False
        if self.consecutive >= self.failures:
            self.opened_at = self.clock()


@dataclass
class Upstream:
    """One model of the zoo as the proxy calls it."""
    cfg: UpstreamModel
    timeouts: Timeouts
    breaker: CircuitBreaker
    api_key: Optional[str] = field(default=None, repr=False)
    profile: Optional[Profile] = None

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def upstream_model(self) -> str:
        return self.cfg.upstream_model or self.cfg.name

    @property
    def price_per_mtok(self) -> Optional[float]:
        """One figure for routing's cost weight: the config's price, else the profile's."""
        p = self.cfg.price_in_out
        if p is not None:
            return (p.input + p.output) / 2
        return self.profile.price if self.profile is not None else None

    def cost_usd(self, usage: dict | None) -> Optional[float]:
        p = self.cfg.price_in_out
        if p is None or not isinstance(usage, dict):
            return None
        try:
            return (int(usage.get("prompt_tokens") or 0) * p.input
                    + int(usage.get("completion_tokens") or 0) * p.output) / 1e6
        except (TypeError, ValueError):
            return None

    def headers(self, stream: bool) -> dict[str, str]:
        h = {"content-type": "application/json", "accept-encoding": "identity",
             "accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        return h

    def redact(self, data: bytes) -> bytes:
        """`data` with this upstream's key removed (an upstream that echoes headers must not leak it)."""
        if self.api_key:
            data = data.replace(self.api_key.encode(), b"[redacted]")
        return data

    def httpx_timeout(self) -> httpx.Timeout:
        t = self.timeouts
        return httpx.Timeout(connect=t.connect, read=t.idle, write=t.idle, pool=t.first_byte)


def build_upstreams(cfg: ServeConfig, environ: Optional[dict] = None) -> list[Upstream]:
    """The zoo's upstreams with keys read from their environment variables and profiles loaded."""
    env = os.environ if environ is None else environ
    out = []
    for i, m in enumerate(cfg.models):
        key = None
        if m.api_key_env:
            key = env.get(m.api_key_env) or None
            if key is None:
                raise ModelsatError(f"models.{i}.api_key_env: environment variable {m.api_key_env} "
                                    f"(API key of {m.name}) is not set or empty")
        profile = Profile.load(m.profile) if m.profile is not None else None
        if profile is not None and profile.model != m.name:
            log.warning("profile %s names model %r; serving it as %r", m.profile, profile.model, m.name)
            profile.model = m.name
        cb = cfg.circuit_breaker
        out.append(Upstream(m, cfg.timeouts_for(m), CircuitBreaker(cb.failures, cb.cooldown_s), key, profile))
    return out


class UpstreamFailed(Exception):
    """One upstream attempt failed in a way worth retrying or falling back from."""

    def __init__(self, reason: str, timeout: bool = False):
        super().__init__(reason)
        self.reason, self.timeout = reason, timeout


class AllUpstreamsFailed(Exception):
    def __init__(self, failures: list[tuple[str, str]], timeout: bool):
        self.failures, self.timeout = failures, timeout
        detail = "; ".join(f"{name}: {reason}" for name, reason in failures) or "no candidate available"
        super().__init__(f"every candidate upstream failed ({detail})")


@dataclass
class Opened:
    """An upstream response whose headers (and first body bytes, or whole body) have arrived."""
    upstream: Upstream
    response: httpx.Response
    first: bytes
    rest: Optional[AsyncIterator[bytes]]   # None when `first` is the whole body
    ttfb_s: float
    attempts: list[tuple[str, str]]        # earlier failures (model, reason), for metrics and headers

    @property
    def status(self) -> int:
        return self.response.status_code

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.response.aclose()


def _describe(exc: BaseException) -> tuple[str, bool]:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no first byte within the first_byte timeout", True
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})", True
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable", False
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped by the upstream", False
    return f"transport error ({type(exc).__name__})", False


async def _attempt(client: httpx.AsyncClient, up: Upstream, body: bytes, stream: bool) -> Opened:
    """One request to `up`: headers and the first body bytes (or, without streaming, the whole body)."""
    t0 = time.perf_counter()
    req = client.build_request("POST", f"{up.cfg.base_url}/chat/completions", content=body,
                               headers=up.headers(stream), timeout=up.httpx_timeout())

    async def until_first_byte():
        resp = await client.send(req, stream=True)
        try:
            it = resp.aiter_raw()
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first, it = b"", None
            return resp, first, it
        except BaseException:
            await resp.aclose()
            raise

    try:
        resp, first, it = await asyncio.wait_for(until_first_byte(), up.timeouts.first_byte)
    except (httpx.TransportError, asyncio.TimeoutError) as exc:
        reason, is_timeout = _describe(exc)
        raise UpstreamFailed(reason, is_timeout) from None
    ttfb = time.perf_counter() - t0
    opened = Opened(up, resp, first, it, ttfb, [])
    if resp.status_code in RETRYABLE:
        await opened.aclose()
        raise UpstreamFailed(f"HTTP {resp.status_code}")
    if stream and resp.status_code < 300:
        return opened
    # whole body: non-streaming answers, and error answers (which are never streamed to the client)
    chunks, size = [first], len(first)
    try:
        if it is not None:
            async for chunk in it:
                chunks.append(chunk)
                size += len(chunk)
                if resp.status_code >= 300 and size > MAX_ERROR_BODY:
                    break
    except httpx.TransportError as exc:
        await opened.aclose()
        reason, is_timeout = _describe(exc)
        raise UpstreamFailed(reason, is_timeout) from None
    await opened.aclose()
    opened.first, opened.rest = b"".join(chunks), None
    return opened


def _retry_after(resp_headers: httpx.Headers | None) -> Optional[float]:
    if not resp_headers:
        return None
    try:
        return float(resp_headers.get("retry-after", ""))
    except ValueError:
        return None


async def open_first_available(client: httpx.AsyncClient, ranking: list[Upstream], bodies: dict[str, bytes],
                               stream: bool, retries: Retries,
                               on_failure: Callable[[Upstream, str], None] = lambda u, r: None) -> Opened:
    """The first candidate (in ranking order) that answers, each tried 1 + retries.attempts times with
    exponential backoff; candidates whose circuit is open are skipped. Raises AllUpstreamsFailed."""
    failures: list[tuple[str, str]] = []
    any_timeout = False
    for up in ranking:
        if not up.breaker.allow():
            failures.append((up.name, "circuit open"))
            continue
        for attempt in range(retries.attempts + 1):
            if attempt:
                await asyncio.sleep(min(retries.backoff_s * 2 ** (attempt - 1), retries.max_backoff_s))
            try:
                opened = await _attempt(client, up, bodies[up.name], stream)
            except UpstreamFailed as exc:
                log.warning("upstream %s attempt %d failed: %s", up.name, attempt + 1, exc.reason)
                failures.append((up.name, exc.reason))
                any_timeout |= exc.timeout
                on_failure(up, exc.reason)
                continue
            up.breaker.record_success()          # it answered (a 4xx is the request's fault, not its)
            opened.attempts = failures
            return opened
        up.breaker.record_failure()
    raise AllUpstreamsFailed(failures, any_timeout)


class UsageScanner:
    """Finds the `usage` object in an SSE stream as it passes (bytes are not modified)."""

    def __init__(self):
        self._buf = b""
        self.usage: Optional[dict] = None

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > 1 << 20:      # a pathological line: stop looking rather than grow
            self._buf = b""
        for line in lines:
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    usage = json.loads(line[5:].strip()).get("usage")
                except (ValueError, AttributeError):
                    continue
                if isinstance(usage, dict):
                    self.usage = usage


def sse_error_event(message: str) -> bytes:
    """An SSE event the OpenAI clients raise as an APIError."""
    return b"data: " + json.dumps({"error": {"message": message, "type": "upstream_error",
                                            "param": None, "code": "upstream_stream_broken"}}).encode() + b"\n\n"


async def relay(opened: Opened, scanner: UsageScanner,
                on_done: Callable[[Optional[str]], None]) -> AsyncIterator[bytes]:
    """The upstream's stream, byte for byte; a broken upstream ends it with an SSE error event.
    Cancelled when the client disconnects, which closes the upstream connection."""
    error: Optional[str] = None
    try:
        scanner.feed(opened.first)
        yield opened.first
        if opened.rest is not None:
            async for chunk in opened.rest:
                scanner.feed(chunk)
                yield chunk
        opened.upstream.breaker.record_success()
    except httpx.TransportError as exc:
        error, _ = _describe(exc)
        opened.upstream.breaker.record_failure()
        log.warning("upstream %s broke mid-stream: %s", opened.upstream.name, error)
        yield sse_error_event(f"upstream {opened.upstream.name} failed mid-stream: {error}")
    finally:
        await opened.aclose()
        on_done(error)
