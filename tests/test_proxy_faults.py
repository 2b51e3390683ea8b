"""The proxy under faults a red team found (issue 44): upstreams that echo their key into a stream, hang,
trickle, send 429 with Retry-After or a reply too large to buffer; clients that send bodies the proxy must
refuse, leave during a circuit breaker's trial or mid-body, or hold a connection half-open. Every upstream
is a real server on 127.0.0.1; raw sockets stand in for clients an HTTP library would tidy up."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import httpx
import pytest

from modelsat.serve.loopback import StubUpstream, answer_lifespan, chunk, read_body
from modelsat.serve.upstream import StreamRedactor
from test_serve_support import CLIENT_KEY, auth, chat, proxy_for, upstream_key

MATH = "Solve this equation: x^2 = 4"


class ScriptedUpstream:
    """An OpenAI-compatible upstream (pure ASGI) whose answer to each request is `behaviour`, a coroutine
    function (receive, send, request JSON, request headers) chosen by the test; it can be swapped between
    requests. `arrived` is set when a request is in, `left` when a client of a waiting answer has gone."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests = 0
        self.times: list[float] = []
        self.arrived = threading.Event()
        self.left = threading.Event()

    async def __call__(self, scope, receive, send):
        if await answer_lifespan(scope, receive, send):
            return
        body = await read_body(receive)
        self.requests += 1
        self.times.append(time.monotonic())
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.arrived.set()
        await self.behaviour(self, receive, send, json.loads(body), headers)

    async def until_client_leaves(self, receive):
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            self.left.set()


async def send_json(send, status: int, obj: dict, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *headers]})
    await send({"type": "http.response.body", "body": json.dumps(obj).encode()})


async def answer_ok(up, receive, send, req, headers):
    from modelsat.serve.loopback import completion
    await send_json(send, 200, completion("scripted", "fine"))


async def answer_500(up, receive, send, req, headers):
    await send_json(send, 500, {"error": {"message": "broken"}})


async def hang(up, receive, send, req, headers):
    await up.until_client_leaves(receive)


async def stream_echoing_headers(up, receive, send, req, headers):
    """A 200 stream whose content is the request's headers, sent a few bytes at a time (the key is cut)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    event = chunk("scripted", {"content": json.dumps(headers)})
    for i in range(0, len(event), 7):
        await send({"type": "http.response.body", "body": event[i:i + 7], "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def trickle(up, receive, send, req, headers):
    """A stream that never ends: one chunk every 20 ms, well inside any idle timeout."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    gone = asyncio.ensure_future(up.until_client_leaves(receive))
    while not gone.done():
        await send({"type": "http.response.body", "body": chunk("scripted", {"content": "."}), "more_body": True})
        await asyncio.wait({gone}, timeout=0.02)


def rate_limited(retry_after: str):
    async def answer(up, receive, send, req, headers):
        await send_json(send, 429, {"error": {"message": "slow down"}}, [(b"retry-after", retry_after.encode())])
    return answer


def huge_reply(size: int):
    async def answer(up, receive, send, req, headers):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        piece = b" " * 65536
        for _ in range(size // len(piece)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"{}"})
    return answer


def post(proxy, body, timeout=20, **kw):
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=auth(), timeout=timeout, **kw)


def stream_bytes(proxy, body) -> tuple[httpx.Response, bytes]:
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, headers=auth(), timeout=20) as r:
        return r, b"".join(r.iter_raw())


def connect(proxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=20)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket timeout 20 s: a hang fails)."""
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            return out
        out += data


def metric(proxy, name: str) -> float:
    for line in httpx.get(f"{proxy.url}/metrics", headers=auth()).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---- 1. secrets in streams ------------------------------------------------------------------------------------

def test_a_streamed_reply_that_echoes_the_upstream_key_reaches_the_client_redacted(tmp_path):
    stubs = {"alpha": ScriptedUpstream(stream_echoing_headers), "beta": ScriptedUpstream(stream_echoing_headers)}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        named, named_data = stream_bytes(proxy, chat(MATH, model="beta", stream=True))
        routed, routed_data = stream_bytes(proxy, chat(MATH, stream=True))
    assert named.status_code == 200 and routed.status_code == 200 and routed.headers["x-modelsat-model"] == "alpha"
    for data, name in ((named_data, "beta"), (routed_data, "alpha")):
        assert upstream_key(name).encode() not in data
        assert b"[redacted]" in data and data.endswith(b"data: [DONE]\n\n")


def test_no_failure_mode_puts_a_key_in_a_log_line_or_a_response(tmp_path, caplog, capfd):
    """Canary keys (the client's, a wrong one, every upstream's) through each fault of this file at once."""
    caplog.set_level(logging.DEBUG)
    wrong = "sk-canary-wrong-key-0a9b8c"
    stubs = {"alpha": ScriptedUpstream(stream_echoing_headers), "beta": ScriptedUpstream(rate_limited("3600")),
             "gamma": ScriptedUpstream(trickle), "delta": ScriptedUpstream(huge_reply(1024 * 1024)),
             "eps": ScriptedUpstream(hang)}
    seen = []
    with proxy_for(tmp_path, stubs, limits={"max_response_bytes": 65536, "body_timeout_s": 0.3},
                   deadlines={"request_s": 0.5, "stream_s": 0.5}) as (proxy, _):
        for model in stubs:
            for stream in (True, False):
                r, data = stream_bytes(proxy, chat(MATH, model=model, stream=stream))
                seen.append(data.decode(errors="replace") + str(r.headers))
        for key in (CLIENT_KEY, wrong):
            r = httpx.get(f"{proxy.url}/v1/models?api_key={key}", headers=auth(key))
            seen.append(r.text + str(r.headers))
        with connect(proxy) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + CLIENT_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n{")
            seen.append(read_until_closed(s).decode(errors="replace"))
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    for secret in (CLIENT_KEY, wrong, *(upstream_key(n) for n in stubs)):
        assert secret not in logged + out + err, "a key reached the logs"
        assert all(secret not in text for text in seen), "a key reached a response"


@pytest.mark.parametrize("cut", range(1, 30))
def test_the_stream_redactor_removes_a_key_cut_anywhere_and_changes_nothing_else(cut):
    key = "sk-upstream-key-0123456789"
    text = f'data: {{"h": "Bearer {key}", "x": 1}}\n\ndata: [DONE]\n\n'.encode()
    redactor = StreamRedactor(key)
    out = b"".join(redactor.feed(text[i:i + cut]) for i in range(0, len(text), cut)) + redactor.flush()
    assert out == text.replace(key.encode(), b"[redacted]")


def test_the_stream_redactor_holds_nothing_back_from_whole_sse_events():
    redactor = StreamRedactor("sk-upstream-key-0123456789")
    assert redactor.feed(b'data: {"a": 1}\n\n') == b'data: {"a": 1}\n\n'


def test_a_stream_cut_inside_the_key_does_not_leak_its_start():
    key = "sk-upstream-key-0123456789"
    redactor = StreamRedactor(key)
    out = redactor.feed(f"data: Bearer {key[:20]}".encode()) + redactor.flush()
    assert key[:20].encode() not in out


# ---- 2. circuit breaker ---------------------------------------------------------------------------------------

def test_a_client_leaving_during_the_half_open_trial_does_not_keep_the_circuit_open(tmp_path):
    alpha = ScriptedUpstream(answer_500)
    with proxy_for(tmp_path, {"alpha": alpha}, retries={"attempts": 0},
                   circuit_breaker={"failures": 1, "cooldown_s": 1e-6}) as (proxy, _):
        assert post(proxy, chat(MATH, model="alpha")).status_code == 502          # the circuit opens
        alpha.behaviour, alpha.arrived = hang, threading.Event()
        body = json.dumps(chat(MATH, model="alpha")).encode()
        with connect(proxy) as s:                                                # the trial request...
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer " + CLIENT_KEY.encode() + b"\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            assert alpha.arrived.wait(20)
        assert alpha.left.wait(20), "the proxy kept waiting on the upstream after its client left"
        alpha.behaviour = answer_ok                                              # ...and the upstream recovers
        r = post(proxy, chat(MATH, model="alpha"))
        ready = httpx.get(f"{proxy.url}/ready", headers=auth()).json()
    assert r.status_code == 200, r.text
    assert ready["circuit_open"] == []


# ---- 3 and 4. bodies the proxy refuses ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"model":"alpha","messages":[{"role":"user","content":"hi"}],"extra":' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b'{"model":"alpha","messages":[{"role":"user","content":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}]}",
])
def test_deeply_nested_json_is_a_400_that_names_the_nesting(tmp_path, raw, caplog, capfd):
    alpha = StubUpstream("alpha")
    with proxy_for(tmp_path, {"alpha": alpha}) as (proxy, _):
        r = httpx.post(f"{proxy.url}/v1/chat/completions", content=raw, headers=auth())
        after = post(proxy, chat(MATH, model="alpha"))
    out, err = capfd.readouterr()
    assert r.status_code == 400 and "nests" in r.json()["error"]["message"]
    assert after.status_code == 200 and alpha.requests == 1
    assert "Traceback" not in caplog.text + out + err and "RecursionError" not in caplog.text + out + err


@pytest.mark.parametrize("raw, field", [
    (b'"stream": "false"', "stream"),
    (b'"stream": 1', "stream"),
    (b'"stream": null, "temperature": NaN', "temperature"),
    (b'"temperature": Infinity', "temperature"),
    (b'"top_p": -Infinity', "top_p"),
    (b'"temperature": 1e400', "temperature"),
    (b'"metadata": {"weights": [1.0, 2.0, 1e999]}', "metadata.weights[2]"),
    (b'"max_tokens": -1', "max_tokens"),
    (b'"max_tokens": 0', "max_tokens"),
    (b'"max_tokens": 2.5', "max_tokens"),
    (b'"max_tokens": true', "max_tokens"),
    (b'"max_completion_tokens": -5', "max_completion_tokens"),
    (b'"n": "2"', "n"),
    (b'"temperature": "hot"', "temperature"),
    (b'"stream_options": "yes"', "stream_options"),
])
def test_a_field_of_the_wrong_type_or_a_non_finite_number_is_a_400_naming_the_field(tmp_path, raw, field):
    alpha = StubUpstream("alpha")
    with proxy_for(tmp_path, {"alpha": alpha}) as (proxy, _):
        body = b'{"model": "alpha", "messages": [{"role": "user", "content": "hi"}], ' + raw + b"}"
        r = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers=auth())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert field in error["message"] and error["param"] == field
    assert alpha.requests == 0


def test_a_string_false_stream_is_not_taken_for_streaming(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha", stream="false"))
        ok = post(proxy, chat(MATH, model="alpha", stream=False, max_tokens=5, temperature=0.5))
    assert r.status_code == 400 and "stream" in r.json()["error"]["message"]
    assert ok.status_code == 200 and ok.json()["model"] == "alpha"


def test_a_message_that_is_not_an_object_is_a_400(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}) as (proxy, _):
        r = httpx.post(f"{proxy.url}/v1/chat/completions", headers=auth(),
                       json={"model": "modelsat", "messages": [{"role": "user", "content": "hi"}, "hi"]})
    assert r.status_code == 400 and "messages[1]" in r.json()["error"]["message"]


# ---- 5. deadlines -----------------------------------------------------------------------------------------------

def test_a_stream_still_trickling_at_the_stream_deadline_is_cut_with_an_error_event(tmp_path):
    alpha = ScriptedUpstream(trickle)
    with proxy_for(tmp_path, {"alpha": alpha}, deadlines={"request_s": 60, "stream_s": 0.5}) as (proxy, _):
        r, data = stream_bytes(proxy, chat(MATH, model="alpha", stream=True))
        assert alpha.left.wait(20), "the upstream was still streaming after the cut"
        cut = metric(proxy, 'modelsat_streams_cut_total{model="alpha",reason="stream_deadline_exceeded"}')
    events = [e for e in data.decode().split("\n\n") if e]
    assert r.status_code == 200 and len(events) > 1
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "stream_deadline_exceeded" and "deadlines.stream_s" in error["message"]
    assert cut == 1.0


def test_an_upstream_that_hangs_before_the_first_byte_is_given_up_at_the_request_deadline(tmp_path):
    alpha = ScriptedUpstream(hang)
    with proxy_for(tmp_path, {"alpha": alpha}, retries={"attempts": 2, "budget": 3},
                   timeouts={"connect": 2, "first_byte": 600, "idle": 600},
                   deadlines={"request_s": 0.5}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"), timeout=30)
    assert r.status_code == 504 and "deadline" in r.json()["error"]["message"]
    assert alpha.requests == 1           # a timeout is not retried on the same upstream


def test_an_alias_has_its_own_request_deadline(tmp_path):
    alpha = ScriptedUpstream(hang)
    with proxy_for(tmp_path, {"alpha": alpha}, timeouts={"connect": 2, "first_byte": 600, "idle": 600},
                   deadlines={"request_s": 600}, aliases={"quick": {"deadline_s": 0.3}}) as (proxy, _):
        r = post(proxy, chat(MATH, model="quick"), timeout=30)
    assert r.status_code == 504 and "deadline" in r.json()["error"]["message"]


def test_a_non_streamed_reply_still_arriving_at_the_request_deadline_is_a_504(tmp_path):
    alpha = ScriptedUpstream(trickle)         # streams, although the request did not ask for it
    with proxy_for(tmp_path, {"alpha": alpha}, deadlines={"request_s": 0.5}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"), timeout=30)
        assert alpha.left.wait(20)
    assert r.status_code == 504 and "deadline" in r.json()["error"]["message"]


# ---- 6. retry budget, Retry-After, 429 -------------------------------------------------------------------------------

def test_one_client_request_makes_at_most_the_budget_of_upstream_requests(tmp_path):
    stubs = {n: ScriptedUpstream(answer_500) for n in ("alpha", "beta", "gamma")}
    with proxy_for(tmp_path, stubs, retries={"attempts": 2, "budget": 3, "backoff_s": 0.001}) as (proxy, _):
        r = post(proxy, chat("a poem about an equation in history"))
    assert r.status_code == 502
    assert [s.requests for s in stubs.values()] == [1, 1, 1]      # each candidate once, not 3 x 3


def test_a_single_candidate_uses_the_budget_for_retries(tmp_path):
    alpha = ScriptedUpstream(answer_500)
    with proxy_for(tmp_path, {"alpha": alpha}, retries={"attempts": 5, "budget": 3, "backoff_s": 0.001}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"))
    assert r.status_code == 502 and alpha.requests == 3


def test_a_retry_after_is_waited_out_before_the_same_upstream_is_asked_again(tmp_path):
    alpha = ScriptedUpstream(rate_limited("0.3"))

    async def then_ok(up, receive, send, req, headers):
        up.behaviour = answer_ok
        await rate_limited("0.3")(up, receive, send, req, headers)
    alpha.behaviour = then_ok
    with proxy_for(tmp_path, {"alpha": alpha}, retries={"attempts": 1, "backoff_s": 0.001}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"))
    assert r.status_code == 200 and alpha.requests == 2
    assert alpha.times[1] - alpha.times[0] >= 0.3          # a lower bound, so no slower machine can fail it


def test_a_retry_after_beyond_the_deadline_is_passed_back_as_a_429(tmp_path):
    alpha = ScriptedUpstream(rate_limited("3600"))
    with proxy_for(tmp_path, {"alpha": alpha}, retries={"attempts": 2, "backoff_s": 0.001}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"))
    assert alpha.requests == 1                               # no retry the deadline cannot wait for
    assert r.status_code == 429 and r.headers["retry-after"] == "3600"
    assert r.json()["error"]["code"] == "rate_limited"


def test_a_retry_after_given_as_an_http_date_is_understood(tmp_path):
    alpha = ScriptedUpstream(rate_limited("Wed, 21 Oct 2099 07:28:00 GMT"))
    with proxy_for(tmp_path, {"alpha": alpha}, retries={"attempts": 2, "backoff_s": 0.001}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"))
    assert r.status_code == 429 and alpha.requests == 1 and int(r.headers["retry-after"]) > 3600


def test_every_candidate_rate_limited_is_a_429_and_a_mix_is_a_502(tmp_path):
    stubs = {"alpha": ScriptedUpstream(rate_limited("0")), "beta": ScriptedUpstream(rate_limited("0"))}
    with proxy_for(tmp_path, stubs, retries={"attempts": 0}) as (proxy, _):
        limited = post(proxy, chat(MATH))
        stubs["beta"].behaviour = answer_500
        mixed = post(proxy, chat(MATH))
    assert limited.status_code == 429 and "alpha: HTTP 429" in limited.json()["error"]["message"]
    assert mixed.status_code == 502


def test_the_fallbacks_header_counts_candidates_left_behind_not_attempts(tmp_path):
    stubs = {"alpha": ScriptedUpstream(answer_500), "beta": ScriptedUpstream(answer_500),
             "gamma": ScriptedUpstream(answer_ok)}
    with proxy_for(tmp_path, stubs, retries={"attempts": 2, "budget": 5, "backoff_s": 0.001}) as (proxy, _):
        r = post(proxy, chat("a poem about an equation in history"))
    assert r.status_code == 200 and r.headers["x-modelsat-model"] == "gamma"
    assert r.headers["x-modelsat-fallbacks"] == "2"
    assert stubs["alpha"].requests + stubs["beta"].requests == 4      # budget 5, one kept for gamma


# ---- 7. logs and limits ------------------------------------------------------------------------------------------

def test_the_access_log_never_holds_a_query_string(tmp_path, caplog, capfd):
    canary = "sk-canary-in-a-query-3f2e1d"
    caplog.set_level(logging.INFO)
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}) as (proxy, _):
        for headers in (auth(), auth("sk-wrong-key-for-the-query-test"), {}):
            httpx.get(f"{proxy.url}/v1/models?api_key={canary}&x=1", headers=headers)
            httpx.get(f"{proxy.url}/health?key={canary}", headers=headers)
    out, err = capfd.readouterr()
    served = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")   # httpx: this test's client
    assert "/v1/models?[query removed]" in served               # the line is there, without its query
    assert canary not in served + out + err


def test_a_non_streamed_reply_over_the_size_limit_is_a_502_naming_the_limit(tmp_path):
    alpha = ScriptedUpstream(huge_reply(4 * 1024 * 1024))
    with proxy_for(tmp_path, {"alpha": alpha}, limits={"max_response_bytes": 256 * 1024}) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"))
    assert r.status_code == 502 and "limits.max_response_bytes" in r.json()["error"]["message"]
    assert alpha.requests == 1                 # an oversized reply is not asked for again


def test_a_404_does_not_echo_a_huge_model_name(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}) as (proxy, _):
        r = post(proxy, chat(MATH, model="m" * 200_000))
        route = httpx.post(f"{proxy.url}/v1/route", headers=auth(),
                           json={"model": "r" * 200_000, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and len(r.content) < 2000 and "200000 characters" in r.json()["error"]["message"]
    assert route.status_code == 400 and len(route.content) < 2000


def test_a_client_leaving_mid_body_logs_no_traceback(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}) as (proxy, _):
        with connect(proxy) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + CLIENT_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
        for _ in range(500):                              # the proxy notices the client left
            if metric(proxy, "modelsat_client_disconnects_total") >= 1:
                break
        assert metric(proxy, "modelsat_client_disconnects_total") == 1
        assert post(proxy, chat(MATH, model="alpha")).status_code == 200
    out, err = capfd.readouterr()
    assert "Traceback" not in caplog.text + out + err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", b"GE"])
def test_a_connection_without_a_complete_request_head_is_closed(tmp_path, sent):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}, server={"header_timeout_s": 0.3}) as (proxy, _):
        with connect(proxy) as s:
            s.sendall(sent)
            assert read_until_closed(s) == b""


def test_a_keep_alive_connection_idle_after_a_response_is_closed(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")},
                   server={"header_timeout_s": 0.3, "keep_alive_s": 600}) as (proxy, _):
        with connect(proxy) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = read_until_closed(s)
    assert reply.startswith(b"HTTP/1.1 200")


def test_a_half_sent_body_is_a_408_and_the_connection_closes(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}, limits={"body_timeout_s": 0.3}) as (proxy, _):
        with connect(proxy) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + CLIENT_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
            reply = read_until_closed(s)
    assert reply.startswith(b"HTTP/1.1 408") and b"limits.body_timeout_s" in reply


def test_only_the_request_making_the_half_open_trial_ends_it():
    from modelsat.serve.upstream import CircuitBreaker
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 11.0
    assert breaker.allow() and not breaker.allow()       # one trial at a time
    breaker.release_trial()                              # the trial's client left: no verdict
    assert breaker.is_open and breaker.allow()           # still open, and the next request makes the trial
