"""The routing proxy against real upstream servers on 127.0.0.1: routing, pass-through, streaming,
failure handling (500, hang, mid-stream drop, 429, circuit breaker, client disconnect), metrics, config."""

from __future__ import annotations

import json

import httpx
import pytest

from modelsat.errors import ModelsatError
from modelsat.serve.config import load_config, parse_config
from modelsat.serve.loopback import StubUpstream
from test_serve_support import CLIENT_KEY, auth, chat, proxy_for, upstream_key

MATH = "Solve this equation: x^2 = 4"
HISTORY = "Which empire fell in 476?"


def post(proxy, body, **kw):
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=auth(), timeout=20, **kw)


def test_modelsat_routes_each_request_to_the_model_whose_profile_fits(tmp_path):
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        r_math, r_hist = post(proxy, chat(MATH)), post(proxy, chat(HISTORY))
    assert r_math.status_code == 200 and r_hist.status_code == 200
    assert r_math.json()["model"] == "alpha" and r_math.headers["x-modelsat-model"] == "alpha"
    assert r_hist.json()["model"] == "beta" and r_hist.headers["x-modelsat-model"] == "beta"
    assert r_math.json()["choices"][0]["message"]["content"] == "answer from alpha"
    assert float(r_math.headers["x-modelsat-routing-ms"]) >= 0


def test_upstream_gets_its_own_model_name_and_key_never_the_clients(tmp_path):
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        post(proxy, chat(MATH, temperature=0.3))
    assert stubs["alpha"].last_body["model"] == "upstream/alpha"
    assert stubs["alpha"].last_body["temperature"] == 0.3
    assert stubs["alpha"].last_headers["authorization"] == f"Bearer {upstream_key('alpha')}"
    assert CLIENT_KEY not in json.dumps(stubs["alpha"].last_headers)


def test_a_real_model_name_passes_through_without_routing(tmp_path):
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        r = post(proxy, chat(MATH, model="beta"))
    assert r.json()["model"] == "beta" and stubs["alpha"].requests == 0
    assert "x-modelsat-routing-ms" not in r.headers


def test_unknown_model_is_a_404_naming_the_available_ones(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}) as (proxy, _):
        r = post(proxy, chat(MATH, model="gpt-nonexistent"))
    assert r.status_code == 404
    assert "gpt-nonexistent" in r.json()["error"]["message"] and "alpha" in r.json()["error"]["message"]


def test_route_endpoint_returns_every_score_without_calling_a_model(tmp_path):
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        r = httpx.post(f"{proxy.url}/v1/route", json={"messages": [{"role": "user", "content": HISTORY}]},
                       headers=auth())
    body = r.json()
    assert r.status_code == 200 and body["model"] == "beta" and body["router"] == "test-keyword"
    assert [c["model"] for c in body["candidates"]] == ["beta", "alpha"]
    assert body["candidates"][0]["score"] > body["candidates"][1]["score"]
    assert stubs["alpha"].requests == 0 and stubs["beta"].requests == 0


def test_models_lists_routing_names_and_models(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}, aliases={"cheap": {"policy": "max-quality"}}) as (proxy, _):
        ids = [m["id"] for m in httpx.get(f"{proxy.url}/v1/models", headers=auth()).json()["data"]]
    assert ids == ["modelsat", "cheap", "alpha"]


def test_streaming_is_passed_through_byte_for_byte(tmp_path):
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    body = chat(MATH, stream=True, stream_options={"include_usage": True})
    with proxy_for(tmp_path, stubs) as (proxy, servers):
        direct = httpx.post(f"{servers['alpha'].url}/v1/chat/completions",
                            json={**body, "model": "upstream/alpha"}).content
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, headers=auth()) as r:
            via_proxy = b"".join(r.iter_raw())
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-modelsat-model"] == "alpha"
        metrics = httpx.get(f"{proxy.url}/metrics", headers=auth()).text
    assert via_proxy == direct and via_proxy.endswith(b"data: [DONE]\n\n")
    assert 'modelsat_tokens_total{kind="completion",model="alpha"} 5.0' in metrics


def test_fallback_to_the_next_candidate_when_the_chosen_upstream_returns_500(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="error500"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        r = post(proxy, chat(MATH))
    assert r.status_code == 200 and r.json()["model"] == "beta"
    assert stubs["alpha"].requests == 2          # the first try and one retry
    assert r.headers["x-modelsat-fallbacks"] == "1"          # one fallback (alpha -> beta), not two attempts


def test_fallback_when_the_chosen_upstream_hangs(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="hang"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs, retries={"attempts": 0},
                   timeouts={"connect": 2, "first_byte": 0.3, "idle": 5}) as (proxy, _):
        r = post(proxy, chat(MATH, stream=True))
        assert stubs["alpha"].client_left.wait(10), "the hung upstream's connection was not closed"
    assert r.status_code == 200 and r.headers["x-modelsat-model"] == "beta"
    assert b"beta" in r.content and b"alpha" not in r.content


def test_fallback_when_the_chosen_upstream_is_down(tmp_path):
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, servers):
        servers["alpha"].stop()
        r = post(proxy, chat(MATH))
    assert r.status_code == 200 and r.json()["model"] == "beta"


def test_a_drop_after_the_first_byte_ends_the_stream_with_a_clean_error_event(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="drop"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=chat(MATH, stream=True),
                          headers=auth(), timeout=20) as r:
            data = b"".join(r.iter_raw())
    events = [e for e in data.decode().split("\n\n") if e]
    assert r.status_code == 200 and r.headers["x-modelsat-model"] == "alpha"
    assert '"role": "assistant"' in events[0]
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert "alpha" in error["message"] and error["code"] == "upstream_stream_broken"
    assert stubs["beta"].requests == 0          # after the first byte there is no fallback


def test_retry_with_backoff_after_429_then_success_on_the_same_model(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", fail_first=1, fail_status=429), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        r = post(proxy, chat(MATH))
    assert r.json()["model"] == "alpha" and stubs["alpha"].requests == 2 and stubs["beta"].requests == 0


def test_a_named_model_that_fails_is_a_502_not_another_model(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="error500"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        r = post(proxy, chat(MATH, model="alpha"))
    assert r.status_code == 502 and stubs["beta"].requests == 0
    assert "alpha: HTTP 500" in r.json()["error"]["message"]


def test_all_candidates_timing_out_is_a_504(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="hang")}
    with proxy_for(tmp_path, stubs, retries={"attempts": 0},
                   timeouts={"connect": 2, "first_byte": 0.2, "idle": 5}) as (proxy, _):
        r = post(proxy, chat(MATH))
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_unavailable"


def test_circuit_breaker_skips_an_upstream_that_keeps_failing(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="error500"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs, retries={"attempts": 0},
                   circuit_breaker={"failures": 2, "cooldown_s": 3600}) as (proxy, _):
        for _ in range(2):
            assert post(proxy, chat(MATH)).json()["model"] == "beta"
        r = post(proxy, chat(MATH))
        ready = httpx.get(f"{proxy.url}/ready", headers=auth()).json()
        metrics = httpx.get(f"{proxy.url}/metrics", headers=auth()).text
    assert r.json()["model"] == "beta" and stubs["alpha"].requests == 2
    assert ready["circuit_open"] == ["alpha"]
    assert 'modelsat_circuit_open{model="alpha"} 1.0' in metrics


def test_client_disconnect_mid_stream_cancels_the_upstream_request(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="slow_stream")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=chat(MATH, stream=True),
                          headers=auth(), timeout=20) as r:
            first = next(r.iter_raw())
        assert b"assistant" in first
        assert stubs["alpha"].client_left.wait(10), "upstream still streaming after the client left"


def test_client_disconnect_before_the_first_byte_cancels_the_upstream_request(tmp_path):
    stubs = {"alpha": StubUpstream("alpha", mode="hang")}
    with proxy_for(tmp_path, stubs, timeouts={"connect": 2, "first_byte": 120, "idle": 120}) as (proxy, _):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{proxy.url}/v1/chat/completions", json=chat(MATH), headers=auth(), timeout=0.5)
        assert stubs["alpha"].client_left.wait(10), "upstream still waited on after the client left"


def test_without_a_router_routing_names_get_a_clear_error_and_models_still_pass_through(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}, router=None) as (proxy, _):
        routed, named = post(proxy, chat(MATH)), post(proxy, chat(MATH, model="alpha"))
        ready = httpx.get(f"{proxy.url}/ready", headers=auth())
    assert routed.status_code == 503 and "no router configured" in routed.json()["error"]["message"]
    assert named.status_code == 200
    assert ready.status_code == 503 and ready.json()["problems"] == ["no router configured"]


def test_ready_and_metrics_report_the_router_and_requests(tmp_path):
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")}, prices={"alpha": 2.0}) as (proxy, _):
        post(proxy, chat(MATH))
        ready = httpx.get(f"{proxy.url}/ready", headers=auth())
        metrics = httpx.get(f"{proxy.url}/metrics", headers=auth()).text
    assert ready.status_code == 200 and ready.json()["router"] == "test-keyword"
    assert 'modelsat_requests_total{endpoint="chat",status="200"} 1.0' in metrics
    assert 'modelsat_chosen_model_total{model="alpha",requested="modelsat"} 1.0' in metrics
    assert "modelsat_routing_overhead_seconds_count 1.0" in metrics
    assert 'modelsat_upstream_first_byte_seconds_count{model="alpha"} 1.0' in metrics
    assert 'modelsat_cost_usd_total{model="alpha"} 3e-05' in metrics


def test_openai_client_talks_to_the_proxy_unchanged(tmp_path):
    openai = pytest.importorskip("openai")
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs) as (proxy, _):
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=CLIENT_KEY, max_retries=0)
        reply = client.chat.completions.create(model="modelsat", messages=[{"role": "user", "content": HISTORY}])
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="modelsat", messages=[{"role": "user", "content": MATH}], stream=True) if c.choices]
        models = [m.id for m in client.models.list()]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    assert reply.model == "beta" and reply.choices[0].message.content == "answer from beta"
    assert "".join(pieces).strip() == "answer from alpha"
    assert "modelsat" in models


def test_openai_client_raises_on_a_broken_stream_instead_of_hanging(tmp_path):
    openai = pytest.importorskip("openai")
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha", mode="drop")}) as (proxy, _):
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20)
        with pytest.raises(openai.APIError, match="mid-stream"):
            list(client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": MATH}],
                                                stream=True))


# ---- config ------------------------------------------------------------------------------------------------

def test_config_error_names_the_field_and_never_echoes_a_secret(tmp_path):
    secret = "sk-live-THIS-IS-A-REAL-KEY-123"
    bad = {"models": [{"name": "a", "base_url": "http://127.0.0.1:1/v1", "api_key_env": secret}],
           "auth": {"client_keys_env": ["K"]}}
    with pytest.raises(ModelsatError) as exc:
        parse_config(bad, source="zoo.yaml")
    assert "models.0.api_key_env" in str(exc.value) and secret not in str(exc.value)


def test_config_without_client_keys_is_refused(tmp_path):
    with pytest.raises(ModelsatError, match="no client keys"):
        parse_config({"models": [{"name": "a", "base_url": "http://127.0.0.1:1/v1"}]})


def test_example_config_parses(tmp_path):
    from pathlib import Path
    cfg = load_config(Path(__file__).parents[1] / "examples" / "serve-zoo.yaml")
    assert cfg.models and cfg.auth.client_keys_env


def test_validate_command_reports_a_missing_environment_variable_by_name(tmp_path, monkeypatch):
    from typer.testing import CliRunner
    from modelsat.cli import app
    (tmp_path / "zoo.yaml").write_text(
        "models:\n  - name: a\n    base_url: http://127.0.0.1:9/v1\n    api_key_env: A_KEY_THAT_IS_UNSET\n"
        "auth:\n  client_keys_env: [CLIENT_KEY_FOR_VALIDATE]\n")
    monkeypatch.setenv("CLIENT_KEY_FOR_VALIDATE", "sk-validate-secret-xyz")
    monkeypatch.delenv("A_KEY_THAT_IS_UNSET", raising=False)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "zoo.yaml")])
    assert result.exit_code != 0
    assert "A_KEY_THAT_IS_UNSET" in result.output and "sk-validate-secret-xyz" not in result.output
    monkeypatch.setenv("A_KEY_THAT_IS_UNSET", "sk-now-set")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "zoo.yaml")])
    assert result.exit_code == 0, result.output
    assert "sk-now-set" not in result.output


@pytest.mark.parametrize("key", ["sk-has a space", "sk-quote\"d", "sk-comma,key", "sk-accent-\u00e9",
                                 "=sk-leading-equals"])
def test_validate_refuses_a_client_key_no_client_could_send_as_a_bearer_token(tmp_path, monkeypatch, key):
    from typer.testing import CliRunner
    from modelsat.cli import app
    (tmp_path / "zoo.yaml").write_text("models:\n  - name: a\n    base_url: http://127.0.0.1:9/v1\n"
                                       "auth:\n  client_keys_env: [CLIENT_KEY_WITH_ODD_CHARACTERS]\n")
    monkeypatch.setenv("CLIENT_KEY_WITH_ODD_CHARACTERS", key)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "zoo.yaml")])
    assert result.exit_code != 0
    assert "CLIENT_KEY_WITH_ODD_CHARACTERS" in result.output and "RFC 6750" in result.output
    assert key not in result.output
    monkeypatch.setenv("CLIENT_KEY_WITH_ODD_CHARACTERS", "sk-fine_key.v2~x+y/z==")
    assert CliRunner().invoke(app, ["validate", str(tmp_path / "zoo.yaml")]).exit_code == 0


def test_the_proxy_centres_its_candidates_at_start_up_not_on_the_first_request(tmp_path):
    """A centred Model-SAT router (lm_center_items) costs that many forwards per new candidate: the proxy pays
    them while starting (Router.prepare), so its first routed request does not."""
    from modelsat.routers.modelsat.router import ModelSATRouter
    from test_modelsat_model import PROFILES, synthetic_records
    overrides = {"model": {"prior": "fitted", "lm_center_items": 5, "encoder": "tiny"}}
    router = ModelSATRouter(preset="tiny", overrides=overrides).fit(synthetic_records(4), PROFILES)
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs, router=router) as (proxy, _):
        served = proxy.app.state.routing
        assert len(served.router.offset_cache_) == 2                  # both upstreams' profiles, before any request
        assert post(proxy, chat(MATH)).headers["x-modelsat-model"] in ("alpha", "beta")
        assert len(served.router.offset_cache_) == 2
