"""Client authentication and request limits as pure ASGI middleware, decided before any routing.

Default deny: every request needs a valid client key except liveness (`GET /health`), and the decision reads
the raw request path exactly as it arrived (ASGI `raw_path`), never a decoded or normalised form, so no
trailing slash, double slash or percent-encoding reaches an open route. (vLLM's `--api-key` guard was a
path-prefix test that left routes open; LiteLLM's CVE-2026-59822 let a malformed Authorization header
become an empty identity. Here a malformed header is a 401, full stop.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Iterable

PUBLIC = {(b"GET", b"/health"), (b"HEAD", b"/health")}
# RFC 6750 b64token: the only credential syntax accepted after "Bearer " (the scheme name is case-insensitive,
# RFC 9110 section 11.1; the token's character class already holds both cases)
_BEARER = re.compile(rb"^Bearer ([A-Za-z0-9\-._~+/]+=*)$", re.IGNORECASE)


def error_body(message: str, type_: str, code: str | None = None) -> bytes:
    """An OpenAI-style error body."""
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


async def send_error(send, status: int, message: str, type_: str, code: str | None = None,
                     extra_headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = error_body(message, type_, code)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra_headers]})
    await send({"type": "http.response.body", "body": body})


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of the one well-formed `Authorization: Bearer <token>` header, else None."""
    values = [v for k, v in headers if k.lower() == b"authorization"]
    if len(values) != 1:
        return None                       # absent, or repeated (which one would a proxy in front pick?)
    m = _BEARER.match(values[0])
    return m.group(1) if m else None


class KeyChecker:
    """Compares a presented key against sha256 digests in constant time (every digest is compared)."""

    def __init__(self, digests: list[bytes]):
        self._digests = list(digests)

    def __call__(self, token: bytes) -> bool:
        presented = hashlib.sha256(token).digest()
        ok = False
        for d in self._digests:
            ok |= hmac.compare_digest(presented, d)
        return ok


class AuthMiddleware:
    """Pure ASGI: 401 unless the request is liveness or carries a valid client key."""

    def __init__(self, app, check: KeyChecker | None):
        self.app = app
        self.check = check                # None = allow_unauthenticated (explicit opt-in in the config)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":       # websockets and anything else: not served
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        raw_path = scope.get("raw_path")
        if raw_path is None:              # a server that does not give raw_path: nothing is public
            raw_path = b""
        if (scope["method"].encode(), raw_path) in PUBLIC or self.check is None:
            return await self.app(scope, receive, send)
        token = bearer_token(scope.get("headers", []))
        if token is None or not self.check(token):
            return await send_error(send, 401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                    "invalid_request_error", "invalid_api_key",
                                    [(b"www-authenticate", b"Bearer")])
        scope.setdefault("state", {})["authenticated"] = True
        return await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Pure ASGI: 413 for a request body over `max_bytes`, whether declared (Content-Length) or streamed."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body exceeds the limit of {self.max_bytes} bytes (limits.max_body_bytes)"
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    return await send_error(send, 400, "malformed Content-Length", "invalid_request_error")
                if declared > self.max_bytes:
                    return await send_error(send, 413, message, "invalid_request_error", "request_too_large")
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge()
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await send_error(send, 413, message, "invalid_request_error", "request_too_large")
