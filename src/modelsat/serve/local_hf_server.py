"""A small OpenAI-compatible server for a local transformers causal LM (SmolLM2-135M-Instruct by default):
`POST /v1/chat/completions` (greedy; non-streaming, or `stream: true` as server-sent events) and
`GET /v1/models`. Replies are bounded by `max_tokens` (and by the server's own cap).

    python -m modelsat.serve.local_hf_server --port 8011 [--hf-path DIR] [--layers N] [--threads 2]

`--layers N` serves the model cut to its first N layers: a smaller, faster and (measured) worse model from the
same weights, so one machine can stand in for several models of different size.

`running_server(app)` starts any ASGI app with uvicorn on a free loopback port in a thread (tests and
benchmarks use it as a real upstream).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator

from pydantic import BaseModel, Field


class ChatMessage(BaseModel):
    role: str
    content: str | list | None = None


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    stream: bool = False


def _text(content) -> str:
    if isinstance(content, list):   # OpenAI content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def make_app(hf_path: str | os.PathLike | None = None, max_tokens_cap: int = 256, default_max_tokens: int = 64,
             model_name: str | None = None, threads: int | None = None, lm=None, layers: int | None = None,
             announce: bool = False):
    """The FastAPI app serving `hf_path` (SmolLM2 when None; or a ready LocalChatModel `lm`).

    The model loads at startup, once (`announce`: then one line says it is ready). A request's `max_tokens` is
    clipped to `max_tokens_cap`.
    """
    from fastapi import FastAPI, HTTPException
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import StreamingResponse

    state: dict = {"lm": lm}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state["lm"] is None:
            from modelsat.aptitude.local_model import LocalChatModel
            state["lm"] = await run_in_threadpool(LocalChatModel, hf_path, threads, layers)
            if announce:
                lm = state["lm"]
                print(f"local model server: {served_name()} ready ({lm.name}, "
                      f"{lm.model.config.num_hidden_layers} layers)", flush=True)
        yield

    app = FastAPI(title="modelsat local HF server", lifespan=lifespan)

    def served_name() -> str:
        return model_name or state["lm"].name

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served_name(), "object": "model", "created": 0,
                                            "owned_by": "local"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        want = req.max_completion_tokens or req.max_tokens or default_max_tokens
        max_new = min(want, max_tokens_cap)
        messages = [{"role": m.role, "content": _text(m.content)} for m in req.messages]
        if not any(m["content"] for m in messages):
            raise HTTPException(status_code=400, detail="messages hold no text")
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        name = served_name()
        lm = state["lm"]
        if not req.stream:
            r = await run_in_threadpool(lm.complete, messages, max_new)
            return {"id": cid, "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": r["text"]},
                                 "finish_reason": r["finish_reason"]}],
                    "usage": {"prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
                              "total_tokens": r["prompt_tokens"] + r["completion_tokens"]}}

        def events() -> Iterator[str]:
            def chunk(delta: dict, finish: str | None = None) -> str:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
            yield chunk({"role": "assistant", "content": ""})
            n = 0
            for piece in lm.stream(messages, max_new):
                n += 1
                yield chunk({"content": piece})
            yield chunk({}, "length" if n >= max_new else "stop")
            yield "data: [DONE]\n\n"
        # a sync generator: Starlette iterates it in a worker thread, so generation does not block the loop
        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@contextlib.contextmanager
def running_server(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serves `app` with uvicorn on a free loopback port in a background thread; yields its base URL
    (e.g. http://127.0.0.1:41234) once it accepts connections, and stops it on exit."""
    from modelsat.serve.loopback import LoopbackServer
    if host != "127.0.0.1":
        raise ValueError("running_server serves on 127.0.0.1 only")
    with LoopbackServer(app, log_level="warning") as server:
        yield server.url


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from modelsat.cli.logs import LogLevel, set_log_level, uvicorn_level
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf-path", default=None, help="a local transformers folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--max-tokens-cap", type=int, default=256)
    ap.add_argument("--model-name", default=None, help="the name /v1/models reports")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; on a machine of its own, "
                    "the number of cores answers faster)")
    ap.add_argument("--layers", type=int, default=None, help="serve the model cut to its first N layers "
                    "(smaller, faster, worse)")
    ap.add_argument("--log-level", choices=[x.value for x in LogLevel], default="quiet",
                    help="quiet (the default: errors only, no access log, no progress bars), warning, info, debug")
    args = ap.parse_args(argv)
    set_log_level(args.log_level)
    if args.layers is not None and args.layers < 1:
        ap.error(f"--layers must be at least 1, got {args.layers}")
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, got {args.threads}")
    app = make_app(args.hf_path, max_tokens_cap=args.max_tokens_cap, model_name=args.model_name,
                   threads=args.threads, layers=args.layers, announce=True)
    print(f"local model server on http://{args.host}:{args.port}/v1 (loading the model)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=uvicorn_level(args.log_level))


if __name__ == "__main__":
    main()
