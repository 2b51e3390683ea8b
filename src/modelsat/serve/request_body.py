"""The checks a client's JSON body passes before anything is routed or forwarded: valid, finite, not nested
past what the proxy can re-encode, and the fields the proxy itself reads (or that upstreams choke on) of the
right type. A refused body raises BadRequest, whose message names the field."""

from __future__ import annotations

import json
import math
from typing import Optional

from modelsat.serve.config import Limits

# fields whose value must be an integer of at least this, when present and not null
_MIN_INT = {"max_tokens": 1, "max_completion_tokens": 1, "n": 1}
# fields whose value must be a (finite) number, when present and not null
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


class BadRequest(Exception):
    """A body the proxy refuses (400): `message` names the field, `code` is the OpenAI-style error code."""

    def __init__(self, message: str, code: str = "invalid_request", param: Optional[str] = None):
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


class _NotFinite(ValueError):
    pass


def _no_constant(name: str):
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):          # 1e400 parses as infinity
        raise _NotFinite(text)
    return value


_MARK = object()


def _where(path: list) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path)) \
        or "(top level)"


def _find_mark(obj) -> list:
    """The path to the first _MARK in `obj` (walked without recursion: the body may nest deeply)."""
    stack = [(obj, [])]
    while stack:
        node, path = stack.pop()
        if node is _MARK:
            return path
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((v, [*path, k]) for k, v in reversed(list(items)))
    return []


def _not_finite_field(raw: bytes) -> str:
    """Where the first NaN, Infinity or overflowing number is (only called on a body already refused)."""
    marked = json.loads(raw, parse_constant=lambda _: _MARK,
                        parse_float=lambda t: _MARK if math.isinf(float(t)) else float(t))
    return _where(_find_mark(marked))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_request_body(raw: bytes, limits: Limits) -> dict:
    """The JSON object in `raw`, checked: an object with a non-empty list of message objects (at most
    limits.max_messages), only finite numbers, `stream` a boolean, token counts positive integers."""
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotFinite:
        field = _not_finite_field(raw)
        raise BadRequest(f"{field}: numbers must be finite (NaN, Infinity and numbers too large for a double, "
                         "like 1e400, are not valid)", "invalid_number", field) from None
    except RecursionError:
        raise BadRequest("request body nests arrays or objects too deeply", "nesting_too_deep") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", "invalid_json")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "invalid_messages", "messages")
    if len(messages) > limits.max_messages:
        raise BadRequest(f"too many messages: {len(messages)} > {limits.max_messages} (limits.max_messages)",
                         "too_many_messages", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise BadRequest(f"messages[{i}] must be an object with 'role' and 'content'", "invalid_messages",
                             f"messages[{i}]")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(f"'stream' must be true or false, got a {type(stream).__name__}", "invalid_type", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", "invalid_type", "stream_options")
    for name, least in _MIN_INT.items():
        v = body.get(name)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= least):
            raise BadRequest(f"'{name}' must be an integer of at least {least}", "invalid_value", name)
    for name in _NUMBERS:
        v = body.get(name)
        if v is not None and not _is_number(v):
            raise BadRequest(f"'{name}' must be a number", "invalid_type", name)
    return body


def encode_for_upstream(body: dict, upstream_model: str) -> bytes:
    """`body` with the upstream's model name, as JSON bytes (BadRequest if it nests too deeply to encode)."""
    try:
        return json.dumps({**body, "model": upstream_model}).encode()
    except RecursionError:
        raise BadRequest("request body nests arrays or objects too deeply", "nesting_too_deep") from None
