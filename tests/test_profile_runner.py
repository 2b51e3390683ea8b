"""Running the aptitude test on real HTTP servers on 127.0.0.1: retries, timeouts, garbage, circle test,
and a run killed with SIGKILL that resumes with nothing lost."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from test_aptitude import example_test

from modelsat.aptitude.profile import Profile
from modelsat.aptitude.runner import journal_path, parse_letter, take_test
from modelsat.errors import ModelsatError
from modelsat.serve.local_hf_server import running_server


def completion(text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def question_of(prompt: str) -> str:
    return re.search(r"^(Question \d+ about \w+\?)$", prompt, flags=re.M).group(1)


class Oracle:
    """An OpenAI-compatible app that knows the answers; `behave(n, prompt)` may override a reply."""

    def __init__(self, test, behave=None):
        # the right option text per question, so a rotated prompt is answered right too
        self.right = {it.question: it.options["ABCDEFGHIJ".index(it.answer)] for _, it in test.items()}
        self.behave = behave
        self.calls: list[str] = []
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            prompt = body["messages"][0]["content"]
            self.calls.append(question_of(prompt))
            n = len(self.calls)
            if self.behave is not None:
                out = await self.behave(n, prompt)
                if out is not None:
                    return out
            text = self.right[question_of(prompt)]
            letter = re.search(rf"^([A-J])\. {re.escape(text)}$", prompt, flags=re.M).group(1)
            return completion(f"{letter}. {text}")


def test_an_endpoint_that_knows_the_answers_scores_100_percent(tmp_path):
    test = example_test()
    oracle = Oracle(test)
    with running_server(oracle.app) as url:
        prof = take_test(test, tmp_path / "p.json", "oracle", endpoint=url, concurrency=3, progress=False)
    assert prof.mean_accuracy == 1.0
    assert sum(s.n_items for s in prof.subjects.values()) == 9 and len(oracle.calls) == 9
    assert Profile.load(tmp_path / "p.json").provenance["method"] == "endpoint"


def test_500s_and_429s_are_retried_with_backoff(tmp_path):
    test = example_test()

    async def flaky(n, prompt):
        if n in (1, 2):
            return PlainTextResponse("overloaded", status_code=503)
        if n == 3:
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0"})
        return None
    oracle = Oracle(test, flaky)
    with running_server(oracle.app) as url:
        prof = take_test(test, tmp_path / "p.json", "flaky", endpoint=url, concurrency=1, backoff=0.01,
                         progress=False)
    assert prof.mean_accuracy == 1.0 and len(oracle.calls) == 9 + 3


def test_an_endpoint_that_keeps_returning_500_fails_clearly_and_keeps_finished_answers(tmp_path):
    test = example_test()

    async def dies(n, prompt):
        return PlainTextResponse("boom", status_code=500) if n > 4 else None
    oracle = Oracle(test, dies)
    with running_server(oracle.app) as url:
        with pytest.raises(ModelsatError, match=r"failed 3 times; last: HTTP 500"):
            take_test(test, tmp_path / "p.json", "dies", endpoint=url, concurrency=1, retries=2, backoff=0.01,
                      progress=False)
    lines = journal_path(tmp_path / "p.json").read_text().splitlines()
    assert len(lines) == 1 + 4                      # header + the four answers given before the failures
    assert not (tmp_path / "p.json").exists()


def test_an_endpoint_that_times_out_is_reported_as_a_timeout(tmp_path):
    test = example_test()
    release = asyncio.Event()

    async def hangs(n, prompt):
        await asyncio.wait_for(release.wait(), timeout=1)
    oracle = Oracle(test, hangs)
    with running_server(oracle.app) as url:
        with pytest.raises(ModelsatError, match=r"no answer within 0.3 s \(timeout\)"):
            take_test(test, tmp_path / "p.json", "slow", endpoint=url, concurrency=1, timeout=0.3, retries=1,
                      backoff=0.01, progress=False)


@pytest.mark.parametrize("body,media", [("<html>oops</html>", "text/html"),
                                        (json.dumps({"choices": []}), "application/json")])
def test_garbage_from_an_endpoint_is_refused_with_the_body_shown(tmp_path, body, media):
    test = example_test()

    async def garbage(n, prompt):
        return PlainTextResponse(body, media_type=media)
    with running_server(Oracle(test, garbage).app) as url:
        with pytest.raises(ModelsatError, match="not an OpenAI chat completion"):
            take_test(test, tmp_path / "p.json", "junk", endpoint=url, progress=False)


def test_unparseable_replies_count_as_wrong_not_as_errors(tmp_path):
    test = example_test()

    async def rambles(n, prompt):
        return completion("I am not sure, sorry.")
    with running_server(Oracle(test, rambles).app) as url:
        prof = take_test(test, tmp_path / "p.json", "rambler", endpoint=url, progress=False)
    assert prof.mean_accuracy == 0.0 and prof.provenance["unparsed_answers"] == 9


def test_circle_test_counts_an_item_only_if_right_under_every_rotation(tmp_path):
    test = example_test()

    letter = max("ABCD", key=lambda x: sum(it.answer == x for _, it in test.items()))

    async def always_the_same(n, prompt):
        return completion(letter)
    with running_server(Oracle(test, always_the_same).app) as url:
        plain = take_test(test, tmp_path / "plain.json", "a", endpoint=url, progress=False)
        circle = take_test(test, tmp_path / "circle.json", "a", endpoint=url, circle=True, circle_threshold=1.0,
                           progress=False)
    n_b = sum(it.answer == letter for _, it in test.items())
    assert n_b > 0
    assert sum(s.accuracy * s.n_items for s in plain.subjects.values()) == pytest.approx(n_b)
    assert circle.mean_accuracy == 0.0 and circle.provenance["prompts"] == 9 * 4
    oracle = Oracle(test)
    with running_server(oracle.app) as url:
        right = take_test(test, tmp_path / "right.json", "o", endpoint=url, circle=True, circle_threshold=1.0,
                          progress=False)
    assert right.mean_accuracy == 1.0


def test_a_rerun_with_other_settings_does_not_mix_into_the_journal(tmp_path):
    test = example_test()
    with running_server(Oracle(test).app) as url:
        take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=3, progress=False)
        with pytest.raises(ModelsatError, match="belongs to another run"):
            take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=3, circle=True, progress=False)
        with pytest.raises(ModelsatError, match="belongs to another run"):
            take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=3, max_tokens=9, progress=False)


def test_a_short_profile_is_completed_later_asking_each_item_once(tmp_path):
    test = example_test()
    oracle = Oracle(test)
    with running_server(oracle.app) as url:
        short = take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=3, progress=False)
        assert len(oracle.calls) == 3 and short.provenance["prompts"] == 3
        more = take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=5, progress=False)
        assert len(oracle.calls) == 5 and more.provenance["answered_this_run"] == 2
        whole = take_test(test, tmp_path / "p.json", "o", endpoint=url, progress=False)
    n_items = sum(len(s.items) for s in test.subjects)
    assert len(oracle.calls) == len(set(oracle.calls)) == n_items     # every item asked once over the three runs
    assert whole.provenance["prompts"] == n_items and whole.provenance["limit"] is None
    assert sum(s.n_items for s in whole.subjects.values()) == n_items


def test_a_run_killed_with_sigkill_resumes_without_losing_or_repeating_an_answer(tmp_path):
    test = example_test()
    test_file = test.save(tmp_path / "test.json")
    gate = threading.Event()

    async def hang_on_sixth(n, prompt):
        if n == 6:
            while not gate.is_set():          # the sixth request never returns while the run is alive
                await asyncio.sleep(0.01)
            return PlainTextResponse("gone", status_code=500)
        return None
    oracle = Oracle(test, hang_on_sixth)
    out = tmp_path / "p.json"
    cmd = [sys.executable, "-c", "from modelsat.cli import main; main()", "profile", "--test", str(test_file),
           "--endpoint", "URL", "--model", "oracle", "--out", str(out), "--concurrency", "1", "--no-progress"]
    with running_server(oracle.app) as url:
        cmd[cmd.index("URL")] = url
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while len(oracle.calls) < 6:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the run did not reach the sixth request"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gate.set()
        assert proc.returncode == -signal.SIGKILL
        before = journal_path(out).read_text().splitlines()
        assert len(before) == 1 + 5                                  # header + five fsynced answers
        answered = [json.loads(x)["key"] for x in before[1:]]
        asked_before = list(oracle.calls)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "5 already in" in done.stdout
    after = journal_path(out).read_text().splitlines()
    assert after[: len(before)] == before                            # nothing rewritten
    keys = [json.loads(x)["key"] for x in after[1:]]
    assert len(keys) == len(set(keys)) == 9 and keys[:5] == answered
    resumed_questions = oracle.calls[len(asked_before):]
    journaled_questions = {json.loads(x)["item_id"] for x in before[1:]}
    assert len(resumed_questions) == 4                               # only the four missing items were asked
    assert not journaled_questions & {q for q in resumed_questions}
    assert Profile.load(out).mean_accuracy == 1.0


def test_a_torn_last_journal_line_is_cut_off_on_resume(tmp_path):
    test = example_test()
    with running_server(Oracle(test).app) as url:
        take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=4, progress=False)
        j = journal_path(tmp_path / "p.json")
        lines = j.read_text().splitlines(keepends=True)
        j.write_text("".join(lines[:-1]) + lines[-1][:20])           # killed in the middle of a write
        prof = take_test(test, tmp_path / "p.json", "o", endpoint=url, limit=4, progress=False)
    assert len(j.read_text().splitlines()) == 1 + 4
    assert prof.mean_accuracy == 1.0


@pytest.mark.parametrize("reply,letter", [("C", "C"), ("(B) because", "B"), ("The answer is (D).", "D"),
                                          ("Answer: A", "A"), ("**B**", "B"), ("A cell divides", None),
                                          ("E", None), ("", None)])
def test_answer_letters_are_parsed_robustly(reply, letter):
    assert parse_letter(reply, 4) == letter
