"""Real HTTP servers on 127.0.0.1 for tests and the load script: a uvicorn server in a thread, and a
stub OpenAI-compatible upstream whose behaviour (answer, fail, hang, drop mid-stream) is chosen per test.

The stub is a real server on a real socket, not a mock: the proxy talks HTTP to it exactly as to vLLM.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Optional

import uvicorn



async def answer_lifespan(scope, receive, send) -> bool:
    """Answers an ASGI lifespan scope (startup and shutdown complete at once); True when `scope` was one."""
    if scope["type"] != "lifespan":
        return False
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return True


async def read_body(receive) -> bytes:
    """The whole request body of an ASGI http scope."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body

class LoopbackServer:
    """Runs an ASGI app with uvicorn on a free 127.0.0.1 port in a daemon thread (a context manager)."""

    def __init__(self, app, access_log: bool = True, log_level: str = "info", options: Optional[dict] = None):
        """`options`: more uvicorn.Config arguments (the proxy's come from http_server.uvicorn_options)."""
        # access_log=False would mute the process-wide "uvicorn.access" logger for every server, not just this one
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it every response written in two parts waits ~40 ms for a delayed ACK
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=access_log, log_level=log_level,
                                lifespan="auto", timeout_graceful_shutdown=3, backlog=4096, **(options or {}))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 180.0) -> "LoopbackServer":
        self.thread.start()
        deadline = time.monotonic() + wait_s
        while not self.server.started:        # uvicorn offers no event; this only waits for startup
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def completion(model: str, text: str, usage: Optional[dict] = None) -> dict:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def chunk(model: str, delta: dict, finish: Optional[str] = None) -> bytes:
    data = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class StubUpstream:
    """An OpenAI-compatible upstream (pure ASGI) named `name`.

    mode: "ok" | "error500" | "hang" (never answers; waits for the client to leave) | "drop" (streams one
    chunk, then the connection breaks) | "slow_stream" (one chunk, then waits for the client to leave) |
    "echo_headers" (400 whose body echoes the request headers). The first `fail_first` requests get
    `fail_status` instead.
    """

    def __init__(self, name: str, mode: str = "ok", fail_first: int = 0, fail_status: int = 429):
        self.name, self.mode = name, mode
        self.fail_first, self.fail_status = fail_first, fail_status
        self.requests = 0
        self.last_body: Optional[dict] = None
        self.last_headers: dict[str, str] = {}
        self.client_left = threading.Event()

    async def __call__(self, scope, receive, send):
        if await answer_lifespan(scope, receive, send):
            return
        body = await read_body(receive)
        self.requests += 1
        self.last_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] == "GET" and scope["path"].endswith("/models"):
            return await self._json(send, 200, {"object": "list", "data": [{"id": self.name, "object": "model"}]})
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return await self._json(send, 400, {"error": {"message": "bad json"}})
        self.last_body = req
        if self.requests <= self.fail_first:
            return await self._json(send, self.fail_status, {"error": {"message": f"{self.name} says no"}},
                                    [(b"retry-after", b"0")])
        if self.mode == "error500":
            return await self._json(send, 500, {"error": {"message": f"{self.name} broke"}})
        if self.mode == "echo_headers":
            return await self._json(send, 400, {"error": {"message": "bad request", "headers": self.last_headers}})
        if self.mode == "hang":
            return await self._wait_for_disconnect(receive)
        text = f"answer from {self.name}"
        if not req.get("stream"):
            return await self._json(send, 200, completion(self.name, text))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": chunk(self.name, {"role": "assistant"}), "more_body": True})
        if self.mode == "drop":
            raise ConnectionAbortedError(f"stub {self.name}: dropping the connection mid-stream (on purpose)")
        if self.mode == "slow_stream":
            return await self._wait_for_disconnect(receive)
        for word in text.split(" "):
            await send({"type": "http.response.body", "body": chunk(self.name, {"content": word + " "}),
                        "more_body": True})
        tail = chunk(self.name, {}, "stop")
        if (req.get("stream_options") or {}).get("include_usage"):
            usage = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": self.name,
                     "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
            tail += b"data: " + json.dumps(usage).encode() + b"\n\n"
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n", "more_body": False})

    async def _wait_for_disconnect(self, receive):
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            self.client_left.set()

    @staticmethod
    async def _json(send, status: int, obj: dict, headers=()):
        body = json.dumps(obj).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *headers]})
        await send({"type": "http.response.body", "body": body})


