"""`modelsat route --policy`: each policy's choice on a zoo where the expectation is certain (a router whose
P(good answer) is a table; test_serve_policy_support), the JSON a script reads, the table a person reads, and
exit 2 naming the option for every bad combination."""

from __future__ import annotations

import json
import sys

import pytest

from modelsat.policies import prompt_tokens
from test_serve_policy_support import MATH, FixedProbabilityRouter, cost, write_zoo
from test_serve_support import KeywordRouter


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(router folder, zoo YAML, a router folder that gives scores, not probabilities)."""
    tmp = tmp_path_factory.mktemp("route-policy")
    return (str(FixedProbabilityRouter().save(tmp / "router")), str(write_zoo(tmp / "zoo")),
            str(KeywordRouter().save(tmp / "keyword")))


def route(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `modelsat route ARGS`, run in this process (the test router is
    registered here)."""
    from modelsat.cli import main
    monkeypatch.setattr(sys, "argv", ["modelsat", "route", *args])
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = exc.code or 0
    out = capsys.readouterr()
    return status, out.out, out.err


def decide(capsys, monkeypatch, setup, *args: str) -> dict:
    router, zoo, _ = setup
    status, out, err = route(capsys, monkeypatch, MATH, "--router", router, "--zoo", zoo, "--json", *args)
    assert status == 0, err
    return json.loads(out)


@pytest.mark.parametrize("args, chosen", [
    ((), "alpha"),
    (("--policy", "max-quality"), "alpha"),
    (("--policy", "threshold", "--delta", "0.03"), "beta"),
    (("--policy", "threshold", "--tau", "0.85"), "beta"),
    (("--policy", "tradeoff", "--lambda", "100"), "beta"),
    (("--policy", "tradeoff", "--lambda", "1"), "alpha"),
    (("--policy", "budget", "--budget", "0.001"), "beta"),
    (("--policy", "budget", "--budget", "1"), "alpha"),
])
def test_each_policy_chooses_as_its_knob_says(capsys, monkeypatch, setup, args, chosen):
    assert decide(capsys, monkeypatch, setup, *args)["chosen"] == chosen


def test_json_gives_the_policy_its_params_and_every_candidates_p_and_expected_cost(capsys, monkeypatch, setup):
    out = decide(capsys, monkeypatch, setup, "--policy", "threshold", "--delta", "0.03")
    tokens = prompt_tokens(MATH)
    assert out["policy"] == "threshold" and out["params"] == {"delta": 0.03} and out["chosen"] == "beta"
    assert out["p"] == pytest.approx(0.88) and out["expected_cost_usd"] == pytest.approx(cost("beta", tokens))
    assert out["prompt_tokens"] == tokens and out["expected_output_tokens"] == 300
    rows = {c["model"]: c for c in out["candidates"]}
    assert [c["model"] for c in out["candidates"]][0] == "beta"
    assert rows["alpha"]["p"] == pytest.approx(0.90) and rows["gamma"]["p"] == pytest.approx(0.40)
    assert rows["alpha"]["expected_cost_usd"] == pytest.approx(cost("alpha", tokens))
    assert rows["gamma"]["expected_cost_usd"] is None              # no price: unknown, not free


def test_budget_says_what_lambda_was_fitted_on(capsys, monkeypatch, setup):
    out = decide(capsys, monkeypatch, setup, "--policy", "budget", "--budget", "0.001")
    params = out["params"]
    assert params["budget"] == 0.001 and params["fitted_on"] == "the routed items" and params["fitted_items"] == 1
    assert params["lambda"] > 0 and params["met"] is True


def test_the_table_shows_p_expected_cost_price_unknown_and_the_policy(capsys, monkeypatch, setup):
    router, zoo, _ = setup
    status, out, err = route(capsys, monkeypatch, MATH, "--router", router, "--zoo", zoo, "--policy", "tradeoff",
                             "--lambda", "100")
    lines = out.splitlines()
    assert status == 0, err
    assert lines[0].strip() == "beta" and "policy tradeoff" in lines[1]
    assert "P(good answer)" in lines[2] and "expected cost" in lines[2]
    assert lines[3].lstrip().startswith("→") and "beta" in lines[3] and "88%" in lines[3] and "$0.00003" in lines[3]
    gamma = next(line for line in lines if "gamma" in line)
    assert "price unknown" in gamma
    assert "policy tradeoff (lambda 100 per USD)" in out and "300 tokens out" in out


@pytest.mark.parametrize("args, option", [
    (("--policy", "tradeoff"), "--lambda"),
    (("--lambda", "3"), "--lambda"),                                  # a knob of another policy
    (("--policy", "threshold"), "--delta"),
    (("--policy", "threshold", "--delta", "2"), "--delta"),
    (("--policy", "threshold", "--tau", "nan"), "--tau"),
    (("--policy", "threshold", "--delta", "0.1", "--budget", "1"), "--budget"),
    (("--policy", "budget"), "--budget"),
    (("--policy", "budget", "--budget", "-1"), "--budget"),
    (("--policy", "tradeoff", "--lambda", "-5"), "--lambda"),
    (("--policy", "cheapest"), "--policy"),
])
def test_a_bad_policy_combination_exits_2_naming_the_option(capsys, monkeypatch, setup, args, option):
    router, zoo, _ = setup
    status, out, err = route(capsys, monkeypatch, MATH, "--router", router, "--zoo", zoo, *args)
    assert status == 2 and option in err and "Traceback" not in err and out == ""


def test_a_cost_policy_with_a_router_without_probabilities_exits_2(capsys, monkeypatch, setup):
    _, zoo, keyword = setup
    status, _, err = route(capsys, monkeypatch, MATH, "--router", keyword, "--zoo", zoo, "--policy", "threshold",
                           "--delta", "0.03")
    assert status == 2 and "--policy threshold" in err and "not probabilities" in err
    status, out, err = route(capsys, monkeypatch, MATH, "--router", keyword, "--zoo", zoo, "--json")
    assert status == 0, err
    body = json.loads(out)
    assert body["p"] is None and body["policy"] == "max-quality" and body["candidates"][0]["p"] is None


@pytest.mark.parametrize("policy, knobs", [("max-quality", {}), ("tradeoff", {"lam": 50.0}),
                                           ("threshold", {"delta": 0.05}), ("threshold", {"tau": 0.7}),
                                           ("threshold", {"delta": 0.0, "tau": 0.9})])
def test_the_fallback_order_starts_with_the_policys_choice_and_holds_every_candidate_once(policy, knobs):
    """`policies.rank` (the order route lists and the proxy tries) agrees with `choose` on 2,000 random requests,
    ties included (P and costs on coarse grids)."""
    import numpy as np

    from modelsat.policies import choose, rank
    rng = np.random.default_rng(0)
    for _ in range(2000):
        m = int(rng.integers(1, 8))
        p, c = rng.integers(0, 11, m) / 10, rng.integers(0, 4, m) / 1000
        order = rank(p, c, policy, **knobs)
        assert sorted(order.tolist()) == list(range(m))
        assert order[0] == choose(p[None, :], c, policy, **knobs).index[0]
        rest = [j for j in range(m) if j != order[0]]
        if rest:       # the second is the policy's choice among the others
            assert order[1] == rest[choose(p[None, rest], c[rest], policy, **knobs).index[0]]
