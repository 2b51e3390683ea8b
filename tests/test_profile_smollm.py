"""SmolLM2-135M-Instruct takes (part of) the aptitude test for real: in process (--hf-path, option-letter
logits) and through the project's OpenAI-compatible server on 127.0.0.1 (greedy replies). The full 1,000
items: scripts/profile_smollm.py, or `pytest -m slow`."""

import json

import httpx
import pytest
from test_aptitude import example_test

from modelsat.aptitude.runner import journal_path, take_test
from modelsat.serve.local_hf_server import make_app, running_server


@pytest.fixture(scope="module")
def smollm():
    import torch
    torch.set_num_threads(1)
    from modelsat.aptitude.local_model import LocalChatModel
    return LocalChatModel(None, threads=1)


def test_smollm_takes_the_test_in_process_by_option_letter_logits(tmp_path, smollm):
    test = example_test()
    prof = take_test(test, tmp_path / "smol.json", "SmolLM2-135M-Instruct", lm=smollm, limit=4, progress=False)
    assert sum(s.n_items for s in prof.subjects.values()) == 4
    assert prof.provenance["scoring"] == "next-token logits over the option letters"
    answers = [json.loads(x) for x in journal_path(tmp_path / "smol.json").read_text().splitlines()[1:]]
    assert len(answers) == 4 and all(a["pred"] in "ABCD" for a in answers)


def test_smollm_takes_the_test_through_the_local_openai_server(tmp_path, smollm):
    test = example_test()
    with running_server(make_app(lm=smollm, max_tokens_cap=5)) as url:
        models = httpx.get(f"{url}/v1/models").json()
        assert models["data"][0]["id"] == "SmolLM2-135M-Instruct"
        prof = take_test(test, tmp_path / "http.json", "SmolLM2-135M-Instruct", endpoint=url, limit=2,
                         concurrency=2, max_tokens=5, timeout=120, progress=False)
    assert sum(s.n_items for s in prof.subjects.values()) == 2 and prof.provenance["method"] == "endpoint"
    answers = [json.loads(x) for x in journal_path(tmp_path / "http.json").read_text().splitlines()[1:]]
    assert all(isinstance(a["response"], str) and a["response"] for a in answers)


def test_local_server_bounds_max_tokens_and_streams_server_sent_events(smollm):
    with running_server(make_app(lm=smollm, max_tokens_cap=3)) as url:
        body = {"messages": [{"role": "user", "content": "Count from one to twenty."}], "max_tokens": 50}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
        assert r["object"] == "chat.completion" and r["usage"]["completion_tokens"] <= 3
        assert r["choices"][0]["finish_reason"] == "length"
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=120) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            lines = [x for x in s.iter_lines() if x.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(x[6:]) for x in lines[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert streamed == r["choices"][0]["message"]["content"]       # greedy: same text both ways
        bad = httpx.post(f"{url}/v1/chat/completions", json={"messages": []}, timeout=30)
        assert bad.status_code == 422


@pytest.mark.slow
def test_smollm_full_aptitude_test_in_process(tmp_path, smollm):
    from modelsat import sources
    from modelsat.aptitude.core_items import build_test
    test = build_test(sources.load("mmlu_pro"))
    prof = take_test(test, tmp_path / "full.json", "SmolLM2-135M-Instruct", lm=smollm, progress=False)
    assert sum(s.n_items for s in prof.subjects.values()) == 1000
    assert 0.0 <= prof.mean_accuracy < 0.5


def test_the_local_server_serves_a_model_cut_to_its_first_layers_as_another_model():
    from modelsat.aptitude.local_model import LocalChatModel
    from modelsat.errors import ModelsatError
    cut = LocalChatModel(None, threads=1, layers=20)
    assert cut.model.config.num_hidden_layers == len(cut.model.model.layers) == 20
    assert cut.name == "SmolLM2-135M-Instruct-20L"
    with running_server(make_app(lm=cut, max_tokens_cap=4)) as url:
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "SmolLM2-135M-Instruct-20L"
        body = {"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 4}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
        assert r["choices"][0]["message"]["content"] and r["usage"]["completion_tokens"] <= 4
    with pytest.raises(ModelsatError, match="at least 1"):
        LocalChatModel(None, layers=0)


def test_the_local_server_refuses_a_bad_layer_count_on_its_command_line():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "modelsat.serve.local_hf_server", "--layers", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--layers must be at least 1" in r.stderr and "Traceback" not in r.stderr


def test_the_local_server_process_says_when_it_is_ready_and_nothing_else_by_default():
    import socket
    import subprocess
    import sys
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "modelsat.serve.local_hf_server", "--port", str(port),
                             "--layers", "12", "--model-name", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
                               json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert r.status_code == 200 and r.json()["model"] == "tiny"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0]
    assert f"local model server on http://127.0.0.1:{port}/v1" in out
    assert "tiny ready (SmolLM2-135M-Instruct-12L, 12 layers)" in out
    assert "Loading weights" not in out and "POST /v1/chat" not in out and "Traceback" not in out, out
