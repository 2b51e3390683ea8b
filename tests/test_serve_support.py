"""Shared pieces of the serve tests (no tests here): a tiny deterministic router, and a zoo of real
loopback upstreams behind a real proxy server."""

from __future__ import annotations

import hashlib
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Optional

import numpy as np

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.routers.base import Router, register
from modelsat.serve.app import make_app
from modelsat.serve.config import parse_config
from modelsat.serve.http_server import uvicorn_options
from modelsat.serve.loopback import LoopbackServer, StubUpstream

CLIENT_KEY = "sk-client-test-5f1d2c3b4a"
KEYWORDS = {"alpha": ["integral", "equation", "math"], "beta": ["history", "war", "empire"],
            "gamma": ["poem", "novel"]}


@register
class KeywordRouter(Router):
    """Scores a candidate by how many of its profile's keywords the instruction contains."""
    name = "test-keyword"

    def __init__(self, bias: float = 0.01):
        self.bias = bias

    def fit(self, records, profiles):
        return self

    def score(self, instructions, candidates):
        return np.array([[sum(k in text.lower() for k in c.notes.get("keywords", [])) + self.bias * c.mean_accuracy
                          for c in candidates] for text in instructions])


def upstream_key(name: str) -> str:
    return f"sk-upstream-{name}-canary-77aa"


def write_profile(tmp: Path, name: str, accuracy: float = 0.5, price: Optional[float] = None) -> Path:
    notes = {"keywords": KEYWORDS.get(name, [])}
    if price is not None:
        notes["price_per_mtok"] = price
    path = tmp / f"{name}.json"
    Profile(name, "test", {"math": SubjectScore(accuracy, 20)}, notes).save(path)
    return path


@contextmanager
def proxy_for(tmp: Path, stubs: dict[str, object], router: Optional[Router] = KeywordRouter(),
              prices: Optional[dict] = None, access_log: bool = True, **overrides):
    """(proxy server, upstream servers) for a zoo whose upstreams are the ASGI apps `stubs` (StubUpstream or
    any OpenAI-compatible app), each served on loopback; the router goes through a saved folder."""
    prices = prices or {}
    with ExitStack() as stack:
        servers = {n: stack.enter_context(LoopbackServer(s)) for n, s in stubs.items()}
        env = {"CLIENT_KEY": CLIENT_KEY, **{f"KEY_{n.upper()}": upstream_key(n) for n in stubs}}
        cfg = {
            "models": [{"name": n, "base_url": f"{srv.url}/v1", "upstream_model": f"upstream/{n}",
                        "api_key_env": f"KEY_{n.upper()}", "profile": str(write_profile(tmp, n)),
                        **({"price": prices[n]} if n in prices else {})} for n, srv in servers.items()],
            "auth": {"client_keys_env": ["CLIENT_KEY"]},
            "timeouts": {"connect": 2, "first_byte": 5, "idle": 5},
            "retries": {"attempts": 1, "backoff_s": 0.01, "max_backoff_s": 0.05},
        }
        if router is not None:
            cfg["router"] = str(router.save(tmp / "router"))
        for k, v in overrides.items():
            cfg[k] = v
        parsed = parse_config(cfg, base_dir=tmp)
        app = make_app(parsed, environ=env)
        proxy = stack.enter_context(LoopbackServer(app, access_log=access_log, options=uvicorn_options(parsed)))
        proxy.app = app
        yield proxy, servers


def auth(key: str = CLIENT_KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def chat(text: str, model: str = "modelsat", **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}
