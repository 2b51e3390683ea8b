"""Property-based tests (Hypothesis) of the two gates every request passes: the client-key check and the
request-body check. Whatever arrives, the key check lets a request through only with exactly one
`Authorization: Bearer <configured key>` header (or on liveness), and the body check either returns a body
the proxy can forward as strict JSON or refuses it with a short message naming what is wrong; nothing else
escapes (no other exception, no 500).

By default each property tries a few hundred examples, a few seconds in all. A longer run:

    MODELSAT_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_proxy_fuzz.py --hypothesis-show-statistics

(the variable sets max_examples for every property here; add --hypothesis-seed=N to replay a run).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelsat.serve.auth import PUBLIC, AuthMiddleware, KeyChecker
from modelsat.serve.config import Limits
from modelsat.serve.request_body import BadRequest, encode_for_upstream, parse_request_body

EXAMPLES = int(os.environ.get("MODELSAT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = b"sk-fuzz-Key_0.9~+/=="
SECOND_KEY = b"k2"                     # configured too: either of two keys passes
OTHER_KEY = b"sk-fuzz-other-key-42"
LIMITS = Limits(max_messages=8)

# ---- the key check ----------------------------------------------------------------------------------------------

header_names = st.sampled_from([b"authorization", b"Authorization", b"AUTHORIZATION", b"x-api-key", b"host",
                                b"authorisation", b"proxy-authorization"]) | st.binary(max_size=16)
schemes = st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"bEArer", b"Basic", b"Token", b"", b"Bearer:"]) \
    | st.binary(max_size=8)
separators = st.sampled_from([b" ", b"  ", b"\t", b"", b" \t", b"\x00"])
tokens = st.sampled_from([KEY, OTHER_KEY, KEY[:-1], KEY + b"x", KEY.upper(), KEY.lower(), b"x" + KEY,
                          KEY + b" ", KEY + b",", KEY.replace(b"=", b""), b""]) \
    | st.from_regex(rb"\A[A-Za-z0-9\-._~+/]+=*\Z") | st.binary(max_size=40)
bearer_any_case = st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"bEArer"])
auth_values = (st.builds(lambda s, t: s + b" " + t, bearer_any_case, st.sampled_from([KEY, SECOND_KEY, OTHER_KEY]))
               | st.builds(lambda s, sep, t, tail: s + sep + t + tail, schemes, separators, tokens,
                           st.sampled_from([b"", b"", b"", b" x", b",Bearer x"])))
headers = st.lists(st.tuples(header_names, auth_values), max_size=4)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "get"])
paths = st.sampled_from([b"/health", b"/health/", b"//health", b"/%68ealth", b"/v1/models", b"/metrics",
                         b"/v1/chat/completions", b"/HEALTH", b"/health?x", b""]) | st.binary(max_size=24)


def key_is_valid(hdrs: list[tuple[bytes, bytes]]) -> bool:
    """The reference rule, written independently of auth.py: one Authorization header, scheme 'bearer' in
    any case, one space, the key, nothing else."""
    values = [v for k, v in hdrs if k.lower() == b"authorization"]
    if len(values) != 1:
        return False
    scheme, sep, token = values[0].partition(b" ")
    return sep == b" " and scheme.lower() == b"bearer" and token in (KEY, SECOND_KEY)


def passes_middleware(method: str, raw_path: bytes, hdrs: list[tuple[bytes, bytes]]) -> bool:
    """Whether AuthMiddleware hands this request to the app (driven directly as ASGI, no server)."""
    reached = []

    async def app(scope, receive, send):
        reached.append(True)

    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 401

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    middleware = AuthMiddleware(app, KeyChecker([hashlib.sha256(KEY).digest(), hashlib.sha256(SECOND_KEY).digest()]))
    scope = {"type": "http", "method": method, "raw_path": raw_path, "path": "/", "headers": hdrs}
    asyncio.run(middleware(scope, receive, send))
    return bool(reached)


@FUZZ
@given(methods, paths, headers)
def test_only_liveness_or_exactly_one_bearer_header_with_a_configured_key_passes(method, raw_path, hdrs):
    public = (method.encode(), raw_path) in PUBLIC
    assert passes_middleware(method, raw_path, hdrs) == (public or key_is_valid(hdrs))


@FUZZ
@given(st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"BeArEr"]), st.sampled_from([KEY, SECOND_KEY]),
       st.lists(st.tuples(st.sampled_from([b"host", b"x-api-key", b"accept"]), st.binary(max_size=20)), max_size=3))
def test_a_configured_key_with_any_case_of_bearer_passes_beside_other_headers(scheme, key, others):
    hdrs = [*others, (b"authorization", scheme + b" " + key)]
    assert passes_middleware("POST", b"/v1/chat/completions", hdrs)


# ---- the body check ---------------------------------------------------------------------------------------------

leaves = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
well_formed_messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]),
                                                       "content": st.text(max_size=20) | json_values}),
                                min_size=1, max_size=3)
messages = well_formed_messages | st.lists(st.dictionaries(st.sampled_from(["role", "content", "name"]),
                                                           json_values, max_size=3) | json_values, max_size=10) \
    | json_values
fields = st.fixed_dictionaries({"messages": messages}, optional={
    "model": st.sampled_from(["modelsat", "alpha"]) | json_values,
    "stream": st.booleans() | json_values,
    "stream_options": st.just({"include_usage": True}) | json_values,
    "max_tokens": st.integers(min_value=-5, max_value=10**6) | json_values,
    "max_completion_tokens": st.integers(min_value=-5, max_value=10**6) | json_values,
    "n": st.integers(min_value=-2, max_value=5) | json_values,
    "temperature": st.floats(allow_nan=True, allow_infinity=True) | json_values,
    "top_p": st.floats(allow_nan=True, allow_infinity=True) | json_values,
})
bodies = st.builds(lambda f, extra: {**extra, **f}, fields, st.dictionaries(st.text(max_size=8), json_values,
                                                                             max_size=3))


def encode(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()      # NaN and Infinity as the non-standard tokens


def numbers_in(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float):
            yield v


def strict_json(raw: bytes):
    def refuse(name):
        raise ValueError(f"non-standard JSON token {name}")
    return json.loads(raw, parse_constant=refuse)




def check(raw: bytes):
    """parse_request_body(raw), with the properties every outcome must have; the body or None if refused."""
    try:
        body = parse_request_body(raw, LIMITS)
    except BadRequest as exc:
        assert exc.message and len(exc.message) < 400       # short: never the client's input echoed back
        return None
    assert isinstance(body, dict)
    msgs = body["messages"]
    assert isinstance(msgs, list) and 1 <= len(msgs) <= LIMITS.max_messages
    assert all(isinstance(m, dict) for m in msgs)
    assert body.get("stream") is None or type(body["stream"]) is bool
    assert body.get("stream_options") is None or isinstance(body["stream_options"], dict)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        v = body.get(name)
        assert v is None or (type(v) is int and v >= 1)
    assert all(math.isfinite(x) for x in numbers_in(body))
    try:
        forwarded = encode_for_upstream(body, "upstream/model")
    except BadRequest:
        return None
    assert strict_json(forwarded)["model"] == "upstream/model"      # the upstream gets standard JSON
    return body


@FUZZ
@given(bodies)
def test_any_json_body_is_either_refused_with_a_message_or_forwardable_as_standard_json(body):
    check(encode(body))


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_are_either_refused_with_a_message_or_a_checked_body(raw):
    check(raw)


@FUZZ
@given(st.integers(min_value=1, max_value=20_000), st.sampled_from([b"[", b'{"a":', b'{"messages":[']))
def test_nesting_at_any_depth_is_refused_or_accepted_never_an_error(depth, opener):
    closer = {b"[": b"]", b'{"a":': b"}", b'{"messages":[': b"]}"}[opener]
    check(opener * depth + b"1" + closer * depth)


valid_bodies = st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=20),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]),
                                                 "content": st.text(max_size=40)}), min_size=1, max_size=8)},
    optional={"stream": st.booleans(), "max_tokens": st.integers(1, 10**6), "n": st.integers(1, 4),
              "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "user": st.text(max_size=10)})


@FUZZ
@given(valid_bodies)
def test_a_well_formed_request_is_accepted_unchanged(body):
    assert check(encode(body)) == body


number_literals = st.from_regex(r"\A-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,4})?\Z") \
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1E+309", "1e308"])


@FUZZ
@given(number_literals, st.sampled_from(["temperature", "metadata", "tools"]))
def test_a_number_literal_is_accepted_exactly_when_it_is_finite(literal, field):
    value = literal if field == "temperature" else f'[{{"x": {literal}}}]'
    raw = f'{{"messages": [{{"role": "user", "content": "hi"}}], "{field}": {value}}}'.encode()
    finite = literal not in ("NaN", "Infinity", "-Infinity") and math.isfinite(float(literal))
    assert (check(raw) is not None) == finite
