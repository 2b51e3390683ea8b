"""modelsat.savings: a prompt log read line by line with every bad line counted by number, and every policy's
predicted quality and cost summed chunk by chunk with the shipped router, the same as in one piece."""

import json

import numpy as np
import pytest

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.aptitude.shipped import shipped_test
from modelsat.errors import ModelsatError
from modelsat.savings import PromptLog, grid_125, round_125, run_savings, zoo_prices

QUESTIONS = ([f"What is {a} times {b}? Show the multiplication step by step." for a, b in zip(range(12, 42), range(7, 37))]
             + [f"Which empire controlled {p} in the {c} century, and why did it fall?"
                for p in ("Anatolia", "Egypt", "Persia", "Gaul", "Castile") for c in ("ninth", "twelfth", "fifteenth")]
             + [f"Explain how the {o} of a {a} works." for o in ("kidney", "lung", "liver") for a in ("frog", "shark")])


def chat(text: str, system: str | None = None) -> str:
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return json.dumps({"messages": msgs})


@pytest.fixture(scope="module")
def shipped_router():
    from modelsat.cli.route import load_router
    router, label = load_router(None)
    assert label.startswith("shipped router")
    return router


@pytest.fixture(scope="module")
def planted_zoo():
    """Three models on the shipped test: `strong` and its twin (the same profile, a tenth of the price) answer
    95 % of every subject, `weak` 5 %. Every prompt's P is the twins' tie above `weak`'s."""
    version = shipped_test().version
    subjects = [s.name for s in shipped_test().subjects]
    strong = {s: SubjectScore(0.95, 20) for s in subjects}
    weak = {s: SubjectScore(0.05, 20) for s in subjects}
    return [Profile("strong", version, strong, notes={"price_per_mtok": 10.0}),
            Profile("strong-twin", version, dict(strong), notes={"price_per_mtok": {"input": 1.0, "output": 1.0}}),
            Profile("weak", version, weak, notes={"price_per_mtok": 0.1})]


def rows_by_name(tally) -> dict:
    return {r["name"]: r for r in tally.rows()}


# ---- reading the log ----------------------------------------------------------------------------------------------
def test_bad_lines_are_counted_by_reason_and_listed_by_line_number(tmp_path):
    lines = [chat("What is 2 + 2?"),                       # 1 good
             "{not json",                                  # 2 invalid JSON
             "",                                           # 3 empty
             json.dumps({"prompt": "no messages here"}),   # 4 no messages list
             chat("Name a prime.", system="brief")[:-2] + ', {"role": "assistant", "content": "ok"}]}',  # 5 good
             json.dumps({"messages": [{"role": "system", "content": "only a system turn"}]}),  # 6 no user message
             json.dumps({"messages": [{"role": "user", "content": "   "}]}),   # 7 empty user message
             chat("x" * 600),                              # 8 too long (over 500 bytes)
             chat("What is the capital of Peru?")]         # 9 good
    path = tmp_path / "log.jsonl"
    data = "\n".join(lines).encode() + b"\n" + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'   # 10
    path.write_bytes(data)
    log = PromptLog(path, max_line_bytes=500, keep_bad=4)
    prompts = [p for chunk in log.chunks(2) for p in chunk]
    assert [p.line for p in prompts] == [1, 5, 9]
    assert prompts[1].instruction == "Name a prime."
    assert log.bad.count == 7 and log.lines == 10
    assert log.bad.by_reason == {"invalid JSON": 1, "empty line": 1, "no messages list": 1, "no user message": 1,
                                 "empty user message": 1, "too long": 1, "not UTF-8": 1}
    assert [n for n, _ in log.bad.first] == [2, 3, 4, 6]      # the first four by number; all seven counted
    assert log.bytes_read == len(data)


def test_a_line_over_the_bound_is_skipped_without_being_read_whole(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("first prompt\n" + "y" * 3_000_000 + "\nlast prompt\n")
    log = PromptLog(path, max_line_bytes=1000)
    assert [p.instruction for c in log.chunks() for p in c] == ["first prompt", "last prompt"]
    assert log.bad.first == [(2, "too long: over 1,000 bytes")]


def test_the_format_is_chosen_from_the_first_non_blank_line_and_said(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n\n" + chat("What is 2 + 2?") + "\n")
    (tmp_path / "b.txt").write_text("What is 2 + 2?\n{\"messages\": []}\n")
    a, b = PromptLog(tmp_path / "a.jsonl"), PromptLog(tmp_path / "b.txt")
    assert a.format == "jsonl" and "JSON object" in a.format_reason
    assert b.format == "text" and "not a JSON object" in b.format_reason
    # in a text file every non-empty line is a prompt, even one that looks like JSON
    assert [p.instruction for c in b.chunks() for p in c] == ["What is 2 + 2?", '{"messages": []}']
    forced = PromptLog(tmp_path / "b.txt", fmt="jsonl")
    assert [p.line for c in forced.chunks() for p in c] == [] and forced.bad.by_reason == {"invalid JSON": 1,
                                                                                              "no user message": 1}


def test_a_jsonl_prompt_is_billed_for_every_message_and_routed_on_the_last_user_message(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"messages": [
        {"role": "system", "content": "s" * 100}, {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "a" * 50},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {}}]}]}))
    (p,), = list(PromptLog(tmp_path / "a.jsonl").chunks())
    assert p.instruction == "second"
    billed = "\n".join(["s" * 100, "first question", "a" * 50, "second"])       # 173 characters, as the proxy joins them
    assert p.prompt_tokens == -(-len(billed) // 4) == 44
    assert p.output_cap is None


def test_a_requests_max_tokens_caps_its_expected_answer(tmp_path, shipped_router, planted_zoo):
    from modelsat.savings import score_chunk
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": "x" * 40}],
                                                            **cap}) for cap in ({}, {"max_tokens": 10},
                                                                                {"max_completion_tokens": 5000})))
    prompts = [p for c in PromptLog(tmp_path / "a.jsonl").chunks() for p in c]
    assert [p.output_cap for p in prompts] == [None, 10, 5000]
    prices = zoo_prices(planted_zoo, "z")
    _, C = score_chunk(shipped_router, planted_zoo, prompts, prices, output_tokens=300)
    assert np.allclose(C[0], (10 * prices[:, 0] + 300 * prices[:, 1]) / 1e6)     # 40 characters: 10 tokens
    assert np.allclose(C[1], (10 * prices[:, 0] + 10 * prices[:, 1]) / 1e6)
    assert np.allclose(C[2], C[0])                  # a cap above the expected length changes nothing


def test_a_missing_log_and_a_bad_format_are_refused(tmp_path):
    with pytest.raises(ModelsatError, match="no such file"):
        PromptLog(tmp_path / "nope.jsonl")
    (tmp_path / "a.txt").write_text("hi\n")
    with pytest.raises(ModelsatError, match="--format"):
        PromptLog(tmp_path / "a.txt", fmt="csv")


def test_every_model_needs_a_price_and_the_missing_ones_are_named(planted_zoo):
    unpriced = Profile("free-ish", planted_zoo[0].test_version, planted_zoo[0].subjects)
    with pytest.raises(ModelsatError, match=r"1 of 2 models have no price \(free-ish\)"):
        zoo_prices([planted_zoo[0], unpriced], "z")
    assert zoo_prices(planted_zoo, "z").tolist() == [[10.0, 10.0], [1.0, 1.0], [0.1, 0.1]]


def test_knob_grids_are_round_numbers():
    assert round_125(0.0031) == 0.002 and round_125(0.004) == 0.005
    assert round_125(180) == 200 and round_125(6) == 5 and round_125(7.2) == 10     # nearest on a log scale
    assert grid_125(0.8, 60) == [1, 2, 5, 10, 20, 50]


# ---- policies on the shipped router -------------------------------------------------------------------------------
def test_planted_zoo_choices_are_the_certain_ones(tmp_path, shipped_router, planted_zoo):
    path = tmp_path / "log.txt"
    path.write_text("\n".join(QUESTIONS[:40]) + "\n")
    prices = zoo_prices(planted_zoo, "planted")
    tally, timing = run_savings(PromptLog(path), shipped_router, planted_zoo, prices, chunk=16, fit_prompts=20,
                                deltas=[0.02], budgets=[1e-7, 1.0])
    rows = rows_by_name(tally)
    assert tally.n == 40 and timing["prompts_per_second"] > 0
    assert rows["strong"]["mean_p"] == rows["strong-twin"]["mean_p"] > rows["weak"]["mean_p"]
    assert tally.best_single == "strong-twin"                   # the tie goes to the cheaper twin
    assert rows["max-quality"]["share"] == {"strong-twin": 1.0}
    assert rows["max-quality"]["mean_cost_usd"] == pytest.approx(rows["strong-twin"]["mean_cost_usd"])
    assert rows["max-quality"]["cost_vs_best_single"] == pytest.approx(1.0)
    assert rows["threshold δ=0.02"]["share"] == {"strong-twin": 1.0}
    assert rows["strong"]["cost_vs_best_single"] == pytest.approx(10.0)
    budgets = [r for r in tally.rows() if r["policy"] == "budget"]
    tight = next(r for r in budgets if r["params"]["budget_usd_per_request"] == pytest.approx(1e-7))
    loose = next(r for r in budgets if r["params"]["budget_usd_per_request"] == pytest.approx(1.0))
    assert tight["share"] == {"weak": 1.0} and tight["params"]["met_on_fit_slice"] is False
    assert "not met" in tight["name"]
    assert loose["share"] == {"strong-twin": 1.0} and loose["params"]["lambda"] == 0.0
    # the far end of the tradeoff sweep sends everything to the cheapest model
    trade = sorted((r for r in tally.rows() if r["policy"] == "tradeoff"), key=lambda r: r["params"]["lambda"])
    assert trade[-1]["share"] == {"weak": 1.0}
    assert [r["mean_cost_usd"] for r in trade] == sorted((r["mean_cost_usd"] for r in trade), reverse=True)


def test_streaming_in_chunks_gives_the_figures_of_one_piece(tmp_path, shipped_router, planted_zoo, monkeypatch):
    # float32 embeddings: in bfloat16 a prompt's vector moves with its batch's padding (P by ~1e-4)
    monkeypatch.setenv("MODELSAT_LIVE_BF16", "0")
    zoo = planted_zoo[1:]         # the twin and the weak model: P differs, so the policies mix them
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(chat(q) for q in QUESTIONS) + "\n")
    prices = zoo_prices(zoo, "z")
    seen = []
    streamed, _ = run_savings(PromptLog(path), shipped_router, zoo, prices, chunk=16, fit_prompts=30,
                              on_chunk=lambda log: seen.append(log.prompts))
    whole, _ = run_savings(PromptLog(path), shipped_router, zoo, prices, chunk=len(QUESTIONS), fit_prompts=30)
    assert seen == list(range(16, len(QUESTIONS), 16)) + [len(QUESTIONS)]     # one call per chunk of 16
    assert streamed.plan.fit_prompts == whole.plan.fit_prompts == 30
    a, b = streamed.rows(), whole.rows()
    assert [r["name"] for r in a] == [r["name"] for r in b]
    for ra, rb in zip(a, b):
        assert ra["mean_p"] == pytest.approx(rb["mean_p"], abs=1e-6), ra["name"]
        assert ra["mean_cost_usd"] == pytest.approx(rb["mean_cost_usd"], rel=1e-9), ra["name"]
        assert ra["share"] == pytest.approx(rb["share"]), ra["name"]


def test_a_log_with_no_routable_prompt_is_an_error_that_lists_its_bad_lines(tmp_path, shipped_router,
                                                                            planted_zoo):
    path = tmp_path / "log.jsonl"
    path.write_text("{bad\n\n")
    with pytest.raises(ModelsatError, match=r"no prompt to route \(2 lines, 2 bad: line 1: invalid JSON"):
        run_savings(PromptLog(path), shipped_router, planted_zoo, zoo_prices(planted_zoo, "z"))


def test_the_shipped_router_gives_probabilities_in_range(shipped_router, planted_zoo):
    p = shipped_router.predict_proba(QUESTIONS[:3], planted_zoo)
    assert p.shape == (3, 3) and np.all((p > 0) & (p < 1))
