"""`modelsat profile --endpoint` through the real entry point against real loopback servers: the closing summary
(accuracy per subject, unparsed replies, tokens, cost), Ctrl-C then resume with nothing asked twice, and an
endpoint that is down, refuses the key or answers garbage: one `error:` line, never a traceback."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from test_aptitude import example_test

from modelsat.aptitude.runner import journal_path
from modelsat.serve.local_hf_server import running_server

MODELSAT = Path(sys.executable).with_name("modelsat")


def modelsat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200"))


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


class AlwaysA:
    """Answers "A" (or something unparseable to questions of `mumble_on`), with token usage; counts questions."""

    def __init__(self, mumble_on: str = "", hold_after: int | None = None):
        self.asked: list[str] = []
        self.hold_after = hold_after
        self.holding = threading.Event()
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        async def chat(request: Request):
            prompt = (await request.json())["messages"][0]["content"]
            question = re.search(r"^(Question \d+ about \w+\?)$", prompt, flags=re.M).group(1)
            if self.hold_after is not None and len(self.asked) >= self.hold_after:
                self.holding.set()
                return PlainTextResponse("held", status_code=503)      # retried until the run is interrupted
            self.asked.append(question)
            text = "I would rather not say" if mumble_on and mumble_on in question else "A"
            return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102}}


def run_args(tmp_path, url, *more) -> list[str]:
    test_file = example_test().save(tmp_path / "test.json")
    return ["profile", "--test", str(test_file), "--endpoint", url, "--model", "m", "--out", str(tmp_path / "p.json"),
            "--no-progress", *more]


def test_the_closing_summary_gives_accuracy_per_subject_unparsed_tokens_and_cost(tmp_path):
    server = AlwaysA(mumble_on="about virology")
    with running_server(server.app) as url:
        r = modelsat(*run_args(tmp_path, url, "--price-in", "1", "--price-out", "10"))
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(server.asked)
    mumbled = sum("about virology" in q for q in server.asked)
    assert mumbled > 0
    assert f"{mumbled} of {n} replies could not be parsed" in r.stdout
    assert f"{100 * n:,} prompt + {2 * n:,} completion tokens" in r.stdout
    assert f"${(100 * n * 1 + 2 * n * 10) / 1e6:.4f}" in r.stdout
    assert re.search(r"virology\W+0%", r.stdout)


def test_an_interrupted_run_resumes_without_asking_an_answered_item_again(tmp_path):
    server = AlwaysA(hold_after=3)
    with running_server(server.app) as url:
        args = run_args(tmp_path, url, "--concurrency", "1", "--backoff", "0.05", "--retries", "1000")
        proc = subprocess.Popen([str(MODELSAT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.holding.wait(120)
            proc.send_signal(signal.SIGINT)                 # Ctrl-C
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:                         # still running after its Ctrl-C: leave nothing behind
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130 and "Traceback" not in out + err, out + err
        assert "3 answers kept" in out and "run the same command again" in out
        server.hold_after = None
        done = modelsat(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 already in" in done.stdout
    assert len(server.asked) == len(set(server.asked)) == 9          # every item answered once, none twice
    lines = journal_path(tmp_path / "p.json").read_text().splitlines()[1:]
    assert len({json.loads(x)["key"] for x in lines}) == len(lines) == 9


def test_an_endpoint_that_is_down_is_one_clear_error(tmp_path):
    with socket.socket() as s:       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_line_error(modelsat(*run_args(tmp_path, f"http://127.0.0.1:{port}/v1", "--retries", "0")))
    assert f"127.0.0.1:{port}" in line and "connection failed" in line and "rerun the same command" in line


def test_an_endpoint_that_refuses_the_key_says_to_check_it(tmp_path):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat():
        return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
    os.environ["PROFILE_TEST_KEY"] = "sk-wrong-key-0000"
    try:
        with running_server(app) as url:
            r = modelsat(*run_args(tmp_path, url, "--api-key-env", "PROFILE_TEST_KEY"))
    finally:
        del os.environ["PROFILE_TEST_KEY"]
    line = one_line_error(r)
    assert "HTTP 401" in line and "--api-key-env" in line and "sk-wrong-key-0000" not in r.stdout + r.stderr


def test_an_endpoint_that_answers_garbage_shows_what_it_sent(tmp_path):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat():
        return PlainTextResponse("<html>hello</html>")
    with running_server(app) as url:
        line = one_line_error(modelsat(*run_args(tmp_path, url)))
    assert "not an OpenAI chat completion" in line and "<html>hello</html>" in line
