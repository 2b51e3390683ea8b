"""The proxy's policies against real loopback servers: an alias's policy is honoured, request headers override
it (each bad header is a 400 that names it), the response headers say what was chosen and agree with
POST /v1/route, a budget's λ is fitted at start on the aptitude-test prompts, and spend is counted by model."""

from __future__ import annotations

from contextlib import contextmanager

import httpx
import pytest

from modelsat.errors import ModelsatError
from modelsat.policies import prompt_tokens
from modelsat.serve.config import parse_config
from modelsat.serve.loopback import StubUpstream
from test_serve_policy_support import HISTORY, MATH, PRICES, FixedProbabilityRouter, cost
from test_serve_support import auth, chat, proxy_for

TOKENS = prompt_tokens(MATH)
ALIASES = {"cheap": {"policy": "threshold", "delta": 0.03},
           "thrifty": {"policy": "tradeoff", "lambda": 100},
           "lavish": {"policy": "tradeoff", "lambda": 1}}


def stubs(**modes) -> dict:
    return {n: StubUpstream(n, mode=modes.get(n, "ok")) for n in ("alpha", "beta", "gamma")}


@contextmanager
def zoo(tmp_path, aliases=ALIASES, upstreams=None, prices=PRICES, **kw):
    """(proxy, stub upstreams) for alpha, beta, gamma routed by the fixed-probability router."""
    upstreams = upstreams or stubs()
    with proxy_for(tmp_path, upstreams, router=FixedProbabilityRouter(), prices=prices, aliases=aliases,
                   **kw) as (proxy, _):
        yield proxy, upstreams


def post(proxy, body, headers=None, path="/v1/chat/completions"):
    return httpx.post(f"{proxy.url}{path}", json=body, headers={**auth(), **(headers or {})}, timeout=20)


def route(proxy, text=MATH, model="modelsat", headers=None):
    return post(proxy, {"model": model, "messages": [{"role": "user", "content": text}]}, headers, "/v1/route")


def test_cost_aware_aliases_pick_the_cheaper_model_that_max_quality_passes_over(tmp_path):
    with zoo(tmp_path) as (proxy, _):
        answers = {m: post(proxy, chat(MATH, model=m)) for m in ("modelsat", "cheap", "thrifty", "lavish")}
    chosen = {m: r.headers["x-modelsat-model"] for m, r in answers.items()}
    assert chosen == {"modelsat": "alpha", "cheap": "beta", "thrifty": "beta", "lavish": "alpha"}
    assert answers["cheap"].json()["model"] == "beta"
    assert answers["cheap"].headers["x-modelsat-policy"] == "threshold"
    assert float(answers["cheap"].headers["x-modelsat-p"]) == pytest.approx(0.88)
    assert float(answers["modelsat"].headers["x-modelsat-expected-cost"]) == pytest.approx(cost("alpha", TOKENS))


def test_response_headers_agree_with_the_route_endpoint_streamed_or_not(tmp_path):
    with zoo(tmp_path) as (proxy, _):
        decided = route(proxy, model="cheap").json()
        whole = post(proxy, chat(MATH, model="cheap"))
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=chat(MATH, model="cheap", stream=True),
                          headers=auth(), timeout=20) as streamed:
            streamed.read()
    for r in (whole, streamed):
        assert r.status_code == 200
        assert r.headers["x-modelsat-model"] == decided["chosen"] == "beta"
        assert float(r.headers["x-modelsat-p"]) == pytest.approx(decided["p"], abs=1e-4)
        assert float(r.headers["x-modelsat-expected-cost"]) == pytest.approx(decided["expected_cost_usd"], rel=1e-6)
        assert r.headers["x-modelsat-policy"] == decided["policy"] == "threshold"


def test_route_endpoint_lists_every_candidate_with_p_and_expected_cost(tmp_path):
    with zoo(tmp_path) as (proxy, servers):
        body = route(proxy, model="cheap").json()
    assert body["requested"] == "cheap" and body["router"] == "test-fixed-p" and body["model"] == "beta"
    assert body["policy"] == "threshold" and body["params"] == {"delta": 0.03} and body["max_cost_usd"] is None
    assert body["probabilities"] is True and body["prompt_tokens"] == TOKENS
    assert body["expected_output_tokens"] == 300 and body["routing_ms"] >= body["policy_ms"] >= 0
    rows = {c["model"]: c for c in body["candidates"]}
    assert [c["model"] for c in body["candidates"]] == ["beta", "alpha", "gamma"]     # the fallback order
    assert rows["alpha"]["p"] == pytest.approx(0.90) and rows["gamma"]["p"] == pytest.approx(0.40)
    assert rows["alpha"]["expected_cost_usd"] == pytest.approx(cost("alpha", TOKENS))
    assert rows["alpha"]["price_per_mtok"] == {"input": 10.0, "output": 10.0}
    assert rows["gamma"]["expected_cost_usd"] is None and rows["gamma"]["price_per_mtok"] is None  # price unknown
    assert all(c["eligible"] for c in body["candidates"])
    assert all(s.requests == 0 for s in servers.values())


def test_a_request_overrides_the_alias_policy_with_headers(tmp_path):
    with zoo(tmp_path) as (proxy, _):
        by_threshold = post(proxy, chat(MATH), {"x-modelsat-policy": "threshold", "x-modelsat-delta": "0.05"})
        by_tau = post(proxy, chat(MATH), {"x-modelsat-policy": "threshold", "x-modelsat-tau": "0.85"})
        by_tradeoff = post(proxy, chat(MATH), {"x-modelsat-policy": "tradeoff", "x-modelsat-lambda": "100"})
        knob_only = post(proxy, chat(MATH, model="thrifty"), {"x-modelsat-lambda": "1"})   # replaces lambda 100
        back_to_best = post(proxy, chat(MATH, model="cheap"), {"x-modelsat-policy": "max-quality"})
        decided = route(proxy, model="thrifty", headers={"x-modelsat-lambda": "1"}).json()
    assert [r.headers["x-modelsat-model"] for r in (by_threshold, by_tau, by_tradeoff, knob_only, back_to_best)] == \
        ["beta", "beta", "beta", "alpha", "alpha"]
    assert decided["params"] == {"lambda": 1.0} and decided["chosen"] == "alpha"


def test_max_cost_header_leaves_out_the_models_over_it(tmp_path):
    cap = (cost("alpha", TOKENS) + cost("beta", TOKENS)) / 2
    with zoo(tmp_path) as (proxy, _):
        r = post(proxy, chat(MATH), {"x-modelsat-max-cost": f"{cap:.8f}"})
        body = route(proxy, headers={"x-modelsat-max-cost": f"{cap:.8f}"}).json()
    assert r.headers["x-modelsat-model"] == "beta" and body["max_cost_usd"] == pytest.approx(cap)
    assert [(c["model"], c["eligible"]) for c in body["candidates"]] == [("beta", True), ("gamma", True),
                                                                         ("alpha", False)]


@pytest.mark.parametrize("headers, named", [
    ({"x-modelsat-policy": "cheapest"}, "x-modelsat-policy"),
    ({"x-modelsat-policy": "budget"}, "x-modelsat-policy"),           # fitted per alias at start, not per request
    ({"x-modelsat-policy": "tradeoff"}, "x-modelsat-lambda"),         # tradeoff needs its knob
    ({"x-modelsat-policy": "threshold"}, "x-modelsat-delta"),
    ({"x-modelsat-policy": "tradeoff", "x-modelsat-lambda": "-1"}, "x-modelsat-lambda"),
    ({"x-modelsat-policy": "tradeoff", "x-modelsat-lambda": "lots"}, "x-modelsat-lambda"),
    ({"x-modelsat-policy": "threshold", "x-modelsat-delta": "1.5"}, "x-modelsat-delta"),
    ({"x-modelsat-policy": "threshold", "x-modelsat-tau": "nan"}, "x-modelsat-tau"),
    ({"x-modelsat-delta": "0.05"}, "x-modelsat-delta"),              # a threshold knob on a max-quality name
    ({"x-modelsat-policy": "tradeoff", "x-modelsat-lambda": "5", "x-modelsat-delta": "0.1"}, "x-modelsat-delta"),
    ({"x-modelsat-max-cost": "-0.01"}, "x-modelsat-max-cost"),
    ({"x-modelsat-max-cost": "free"}, "x-modelsat-max-cost"),
    ({"x-modelsat-max-cost": "inf"}, "x-modelsat-max-cost"),
])
def test_a_bad_routing_header_is_a_400_that_names_it(tmp_path, headers, named):
    with zoo(tmp_path, aliases={}) as (proxy, servers):
        r = post(proxy, chat(MATH), headers)
        routed = route(proxy, headers=headers)
    for answer in (r, routed):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["param"] == named and named in error["message"] and error["code"] == "invalid_header"
    assert all(s.requests == 0 for s in servers.values())


def test_a_cap_below_every_model_is_a_400_naming_the_cheapest(tmp_path):
    with zoo(tmp_path, prices={"alpha": 10.0, "beta": 0.1, "gamma": 0.1}) as (proxy, servers):
        r = post(proxy, chat(MATH), {"x-modelsat-max-cost": "0.0000001"})
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == "x-modelsat-max-cost" and error["code"] == "over_max_cost"
    assert "beta" in error["message"] or "gamma" in error["message"]
    assert all(s.requests == 0 for s in servers.values())


def test_routing_headers_on_a_named_model_are_refused(tmp_path):
    with zoo(tmp_path) as (proxy, servers):
        r = post(proxy, chat(MATH, model="alpha"), {"x-modelsat-max-cost": "0.001"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "x-modelsat-max-cost"
    assert servers["alpha"].requests == 0


def test_fallback_follows_the_policy_and_the_headers_describe_the_model_that_answered(tmp_path):
    with zoo(tmp_path, upstreams=stubs(beta="error500")) as (proxy, _):
        r = post(proxy, chat(MATH, model="cheap"))
    # beta (the threshold's choice) fails; among alpha and gamma the threshold takes alpha (gamma is 0.5 below)
    assert r.status_code == 200 and r.headers["x-modelsat-model"] == "alpha"
    assert float(r.headers["x-modelsat-p"]) == pytest.approx(0.90)
    assert float(r.headers["x-modelsat-expected-cost"]) == pytest.approx(cost("alpha", TOKENS))


def test_budget_alias_fits_lambda_once_at_start_on_the_aptitude_test_prompts(tmp_path):
    aliases = {"tight": {"policy": "budget", "budget": 0.0001}, "loose": {"policy": "budget", "budget": 1.0}}
    # the aptitude prompts are ~190 tokens: the λ that swaps their math items from alpha to beta certainly
    # swaps a math request of ~900 tokens (its cost gap is larger); a 7-token one it may not
    long_math = MATH + " Show every step." * 200
    with zoo(tmp_path, aliases=aliases) as (proxy, _):
        tight, loose = route(proxy, long_math, model="tight").json(), route(proxy, long_math, model="loose").json()
        again = route(proxy, model="tight", text=HISTORY).json()
    assert tight["chosen"] == "beta" and loose["chosen"] == "alpha"
    params = tight["params"]
    assert "shipped aptitude test" in params["fitted_on"] and params["fitted_items"] == 100
    assert params["lambda"] > 0 and params["met"] is True and params["fitted_mean_cost"] <= 0.0001
    assert loose["params"]["lambda"] == 0.0
    assert again["params"]["lambda"] == params["lambda"]          # the same λ for every request


def test_metrics_count_expected_and_actual_spend_by_model(tmp_path):
    with zoo(tmp_path) as (proxy, _):
        a = post(proxy, chat(MATH))
        b1, b2 = post(proxy, chat(MATH, model="cheap")), post(proxy, chat(MATH, model="thrifty"))
        metrics = httpx.get(f"{proxy.url}/metrics", headers=auth()).text

    def value(name: str, model: str) -> float:
        line = next(x for x in metrics.splitlines() if x.startswith(f'{name}{{model="{model}"}}'))
        return float(line.split()[-1])
    assert value("modelsat_expected_cost_usd_total", "alpha") == pytest.approx(
        float(a.headers["x-modelsat-expected-cost"]))
    assert value("modelsat_expected_cost_usd_total", "beta") == pytest.approx(
        float(b1.headers["x-modelsat-expected-cost"]) + float(b2.headers["x-modelsat-expected-cost"]))
    # actual: the stub reports 10 prompt and 5 completion tokens
    assert value("modelsat_cost_usd_total", "beta") == pytest.approx(2 * 15 * PRICES["beta"] / 1e6)


def test_a_router_without_probabilities_routes_by_score_and_refuses_cost_policies(tmp_path):
    from test_serve_support import KeywordRouter
    with proxy_for(tmp_path, stubs(), router=KeywordRouter(), prices=PRICES) as (proxy, _):
        plain = post(proxy, chat(MATH))
        asked = post(proxy, chat(MATH), {"x-modelsat-policy": "threshold", "x-modelsat-delta": "0.03"})
        body = route(proxy).json()
    assert plain.status_code == 200 and plain.headers["x-modelsat-model"] == "alpha"
    assert "x-modelsat-p" not in plain.headers and "x-modelsat-expected-cost" in plain.headers
    assert asked.status_code == 400 and asked.json()["error"]["param"] == "x-modelsat-policy"
    assert "not probabilities" in asked.json()["error"]["message"]
    assert body["probabilities"] is False and body["p"] is None and body["candidates"][0]["p"] is None


def test_a_cost_aware_alias_with_a_router_without_probabilities_is_refused_at_start(tmp_path):
    from test_serve_support import KeywordRouter
    with pytest.raises(ModelsatError, match=r"aliases\.cheap\.policy.*not probabilities"):
        with proxy_for(tmp_path, stubs(), router=KeywordRouter(), aliases={"cheap": ALIASES["cheap"]}):
            pass


@pytest.mark.parametrize("alias, says", [
    ({"policy": "threshold"}, "policy threshold needs delta or tau"),
    ({"policy": "tradeoff", "delta": 0.1, "lambda": 5}, "delta is a knob of policy threshold, not of tradeoff"),
    ({"policy": "budget"}, "policy budget needs budget"),
    ({"policy": "threshold", "delta": 2}, "aliases.x.delta"),
    ({"policy": "cheapest"}, "aliases.x.policy"),
    ({"cost_weight": 0.5}, "cost_weight was replaced by policies"),
])
def test_an_alias_policy_error_names_the_alias_and_key(alias, says):
    data = {"models": [{"name": "a", "base_url": "http://127.0.0.1:9/v1"}], "auth": {"allow_unauthenticated": True},
            "aliases": {"x": alias}}
    with pytest.raises(ModelsatError) as exc:
        parse_config(data, source="zoo.yaml")
    assert "aliases.x" in str(exc.value) and says in str(exc.value)


def test_the_default_routing_name_takes_its_policy_from_aliases(tmp_path):
    with zoo(tmp_path, aliases={"modelsat": {"policy": "threshold", "delta": 0.03}}) as (proxy, _):
        r = post(proxy, chat(MATH))
    assert r.headers["x-modelsat-model"] == "beta" and r.headers["x-modelsat-policy"] == "threshold"


def test_a_budget_is_fitted_again_when_the_zoo_is_reloaded(tmp_path):
    """A changed zoo (beta's price raised 50-fold) gets its own λ when taken in, before any request sees it."""
    import threading

    from modelsat.serve.app import make_app
    from modelsat.serve.loopback import LoopbackServer
    from test_serve_support import write_profile

    def config(beta_price: float):
        models = [{"name": n, "base_url": f"{servers[n].url}/v1", "profile": str(write_profile(tmp_path, n)),
                   "price": p} for n, p in (("alpha", 10.0), ("beta", beta_price))]
        return parse_config({"models": models, "router": str(FixedProbabilityRouter().save(tmp_path / "router")),
                             "aliases": {"tight": {"policy": "budget", "budget": 0.0001}},
                             "auth": {"allow_unauthenticated": True}}, base_dir=tmp_path)

    class OneChange:
        where, pending = "test zoo", False

        def changed(self):
            was, self.pending = self.pending, False
            return was

        def load(self):
            return config(5.0)

    reloaded = threading.Event()
    watch = OneChange()
    with LoopbackServer(StubUpstream("alpha")) as a, LoopbackServer(StubUpstream("beta")) as b:
        servers = {"alpha": a, "beta": b}
        app = make_app(config(0.1), watch=watch, on_reload=lambda old, new: reloaded.set())
        with LoopbackServer(app) as proxy:
            before = route(proxy, model="tight").json()["params"]
            watch.pending = True
            assert reloaded.wait(30), "the zoo change was not taken in"
            after = route(proxy, model="tight").json()["params"]
    assert before["lambda"] != after["lambda"] and before["fitted_items"] == after["fitted_items"] == 100
    assert before["fitted_mean_cost"] < after["fitted_mean_cost"]
