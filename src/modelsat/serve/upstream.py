"""Calls to upstream models: timeouts, retries with backoff, fallback down a ranking, a circuit breaker.

Everything here happens before the first byte reaches the client, so a failure can still move on to the
next-ranked candidate; once the proxy has started answering, `relay` passes bytes through (only the upstream's
own key is redacted) and turns a broken upstream, or a stream past its deadline, into a clean SSE error event.

One client request costs at most `retries.budget` upstream requests over every candidate, all within the
request's deadline; a Retry-After is waited out only when the deadline leaves time for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
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

    def release_trial(self) -> None:
        """Ends a half-open trial that gave no verdict (the client left, the budget or the deadline ran out),
        so a later request can make the trial; a no-op when none is in flight."""
        self._trial_in_flight = False

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
    """One upstream attempt failed in a way worth falling back from; `retry_same`: worth trying the same
    upstream again (not after a timeout or an oversized reply, which a retry would only repeat)."""

    def __init__(self, reason: str, timeout: bool = False, status: Optional[int] = None,
                 retry_after: Optional[float] = None, retry_same: bool = True):
        super().__init__(reason)
        self.reason, self.timeout, self.status = reason, timeout, status
        self.retry_after, self.retry_same = retry_after, retry_same


class AllUpstreamsFailed(Exception):
    """No candidate answered. `rate_limited`: every request made got a 429 (the client gets a 429 too, with
    the shortest Retry-After the upstreams asked for)."""

    def __init__(self, failures: list[tuple[str, str]], timeout: bool, rate_limited: bool = False,
                 retry_after: Optional[float] = None):
        self.failures, self.timeout = failures, timeout
        self.rate_limited, self.retry_after = rate_limited, retry_after
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
    fallbacks: int = 0                     # earlier candidates failed or skipped (retries are not fallbacks)

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


async def _attempt(client: httpx.AsyncClient, up: Upstream, body: bytes, stream: bool, deadline: float,
                   max_bytes: int) -> Opened:
    """One request to `up`: headers and the first body bytes (or, without streaming, the whole body of at most
    `max_bytes`), all before `deadline` (the event loop's clock)."""
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

    first_byte_by = min(asyncio.get_running_loop().time() + up.timeouts.first_byte, deadline)
    try:
        async with asyncio.timeout_at(first_byte_by):
            resp, first, it = await until_first_byte()
    except TimeoutError:
        reason = "request deadline reached" if first_byte_by == deadline else \
            "no first byte within the first_byte timeout"
        raise UpstreamFailed(reason, timeout=True, retry_same=False) from None
    except httpx.TransportError as exc:
        reason, is_timeout = _describe(exc)
        raise UpstreamFailed(reason, is_timeout, retry_same=not is_timeout) from None
    ttfb = time.perf_counter() - t0
    opened = Opened(up, resp, first, it, ttfb, [])
    if resp.status_code in RETRYABLE:
        await opened.aclose()
        raise UpstreamFailed(f"HTTP {resp.status_code}", status=resp.status_code,
                             retry_after=_retry_after(resp.headers))
    if stream and resp.status_code < 300:
        return opened
    # whole body: non-streaming answers, and error answers (which are never streamed to the client)
    limit = max_bytes if resp.status_code < 300 else MAX_ERROR_BODY
    chunks, size = [first], len(first)
    try:
        if it is not None and size <= limit:
            async with asyncio.timeout_at(deadline):
                async for chunk in it:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        break
    except TimeoutError:
        await opened.aclose()
        raise UpstreamFailed("request deadline reached while reading the reply", timeout=True,
                             retry_same=False) from None
    except httpx.TransportError as exc:
        await opened.aclose()
        reason, is_timeout = _describe(exc)
        raise UpstreamFailed(reason, is_timeout, retry_same=not is_timeout) from None
    await opened.aclose()
    if size > limit and resp.status_code < 300:
        raise UpstreamFailed(f"reply larger than limits.max_response_bytes ({max_bytes} bytes)", retry_same=False)
    opened.first, opened.rest = b"".join(chunks), None
    return opened


def _retry_after(resp_headers: httpx.Headers | None) -> Optional[float]:
    """Seconds asked for by a Retry-After header (delay-seconds or an HTTP date), or None."""
    value = resp_headers.get("retry-after") if resp_headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


async def open_first_available(client: httpx.AsyncClient, ranking: list[Upstream], bodies: dict[str, bytes],
                               stream: bool, retries: Retries, deadline: float, max_bytes: int,
                               on_failure: Callable[[Upstream, str], None] = lambda u, r: None) -> Opened:
    """The first candidate (in ranking order) that answers before `deadline` (the event loop's clock).

    Candidates whose circuit is open are skipped. Each is tried up to 1 + retries.attempts times, with
    exponential backoff or the upstream's Retry-After if longer, but never past the deadline and never more
    than retries.budget upstream requests in all: while budget remains, each later candidate keeps one try.
    A timeout moves on to the next candidate at once. Raises AllUpstreamsFailed."""
    loop = asyncio.get_running_loop()
    failures: list[tuple[str, str]] = []
    statuses: list[Optional[int]] = []
    waits: list[float] = []
    tries, any_timeout = 0, False
    for i, up in enumerate(ranking):
        if tries >= retries.budget or loop.time() >= deadline:
            break
        if not up.breaker.allow():
            failures.append((up.name, "circuit open"))
            continue
        trial = up.breaker.is_open               # allowed through an open circuit: this is the half-open trial
        allowed = min(1 + retries.attempts, max(1, retries.budget - tries - (len(ranking) - i - 1)))
        try:
            last: Optional[UpstreamFailed] = None
            for attempt in range(allowed):
                if attempt:
                    wait = min(retries.backoff_s * 2 ** (attempt - 1), retries.max_backoff_s)
                    wait = max(wait, last.retry_after or 0.0)
                    if loop.time() + wait >= deadline:
                        break                  # no time left to wait: the next candidate, or give up
                    await asyncio.sleep(wait)
                tries += 1
                try:
                    opened = await _attempt(client, up, bodies[up.name], stream, deadline, max_bytes)
                except UpstreamFailed as exc:
                    log.warning("upstream %s attempt %d failed: %s", up.name, attempt + 1, exc.reason)
                    failures.append((up.name, exc.reason))
                    statuses.append(exc.status)
                    if exc.status == 429 and exc.retry_after is not None:
                        waits.append(exc.retry_after)
                    any_timeout |= exc.timeout
                    on_failure(up, exc.reason)
                    last = exc
                    if not exc.retry_same:
                        break
                    continue
                up.breaker.record_success()          # it answered (a 4xx is the request's fault, not its)
                opened.attempts = failures
                opened.fallbacks = len({name for name, _ in failures} - {up.name})
                return opened
            up.breaker.record_failure()
        finally:
            if trial:
                up.breaker.release_trial()           # a trial cut short (client gone) must not stay in flight
    rate_limited = bool(statuses) and all(s == 429 for s in statuses)
    raise AllUpstreamsFailed(failures, any_timeout, rate_limited, min(waits) if waits else None)


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
                except (ValueError, AttributeError, RecursionError):
                    continue
                if isinstance(usage, dict):
                    self.usage = usage


def sse_error_event(message: str, code: str = "upstream_stream_broken") -> bytes:
    """An SSE event the OpenAI clients raise as an APIError."""
    return b"data: " + json.dumps({"error": {"message": message, "type": "upstream_error",
                                            "param": None, "code": code}}).encode() + b"\n\n"


class StreamRedactor:
    """Removes a secret from a byte stream cut at arbitrary places. A line that may still complete the secret
    is held back, never more than the secret's length; SSE events end in a newline, so they pass at once."""

    def __init__(self, secret: str):
        self.secret = secret.encode()
        self.keep = len(self.secret) - 1
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.held + chunk if self.held else chunk
        if self.secret in data:
            data = data.replace(self.secret, b"[redacted]")
        cut = data.rfind(b"\n") + 1                 # a key never spans a line break
        if len(data) - cut > self.keep:
            cut = len(data) - self.keep
        self.held = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """What is held back, at the stream's end; a tail that begins the secret (cut off) is redacted too."""
        out, self.held = self.held, b""
        for k in range(min(len(out), self.keep), 3, -1):
            if out.endswith(self.secret[:k]):
                return out[:-k] + b"[redacted]"
        return out


async def relay(opened: Opened, scanner: UsageScanner, on_done: Callable[[Optional[str]], None],
                deadline: float, deadline_s: float) -> AsyncIterator[bytes]:
    """The upstream's stream with its key redacted; a broken upstream, or one still streaming at `deadline`
    (the event loop's clock), ends it with an SSE error event, and `on_done` gets that event's code (None when
    the stream ended well). Cancelled when the client disconnects, which closes the upstream connection."""
    error: Optional[str] = None
    up = opened.upstream
    redactor = StreamRedactor(up.api_key) if up.api_key else None
    try:
        scanner.feed(opened.first)
        yield redactor.feed(opened.first) if redactor else opened.first
        rest = opened.rest
        while rest is not None:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await rest.__anext__()
            except StopAsyncIteration:
                break
            scanner.feed(chunk)
            if redactor:
                chunk = redactor.feed(chunk)
                if not chunk:
                    continue
            yield chunk
        if redactor and redactor.held:
            yield redactor.flush()
        up.breaker.record_success()
    except TimeoutError:
        error = "stream_deadline_exceeded"
        log.warning("upstream %s still streaming at the stream deadline (%g s): cut", up.name, deadline_s)
        if redactor and redactor.held:
            yield redactor.flush()
        yield sse_error_event(f"stream cut: deadlines.stream_s ({deadline_s:g} s) reached", error)
    except httpx.TransportError as exc:
        reason, _ = _describe(exc)
        error = "upstream_stream_broken"
        up.breaker.record_failure()
        log.warning("upstream %s broke mid-stream: %s", up.name, reason)
        yield sse_error_event(f"upstream {up.name} failed mid-stream: {reason}", error)
    finally:
        await opened.aclose()
        on_done(error)
