"""The proxy is safe on a network: default-deny auth decided on the raw path (every route, enumerated from
the app), path tricks, malformed Authorization headers, body and message limits, no client-chosen upstream,
and keys that never reach logs or error bodies."""

from __future__ import annotations

import http.client
import logging

import httpx
import pytest
from starlette.routing import Route

from modelsat.serve.loopback import StubUpstream
from test_serve_support import CLIENT_KEY, auth, chat, proxy_for, sha256_hex, upstream_key

PUBLIC = {("GET", "/health"), ("HEAD", "/health")}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zoo")
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp, stubs, limits={"max_body_bytes": 4096, "max_messages": 3}) as (proxy, servers):
        yield proxy, stubs, servers


def raw_request(proxy, method: str, target: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """Sends `target` verbatim (no client-side normalisation of the path)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{proxy.port}", **(headers or {})}
        if body:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            if isinstance(v, list):
                for item in v:
                    conn.putheader(k, item)
            else:
                conn.putheader(k, v)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def every_route(app) -> list[tuple[str, str]]:
    pairs = []
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route type {type(route).__name__}: cover it in this test"
        for method in sorted(route.methods or []):
            pairs.append((method, route.path))
    return pairs


def test_every_route_of_the_app_is_enumerated_and_some_exist(zoo):
    proxy, _, _ = zoo
    paths = {p for _, p in every_route(proxy.app)}
    assert {"/health", "/ready", "/metrics", "/v1/models", "/v1/route", "/v1/chat/completions"} <= paths


def test_every_route_except_liveness_refuses_a_request_without_a_valid_key(zoo):
    proxy, _, _ = zoo
    for method, path in every_route(proxy.app):
        body = b'{"model":"alpha","messages":[{"role":"user","content":"hi"}]}' if method == "POST" else b""
        no_key = raw_request(proxy, method, path, body=body)[0]
        wrong_key = raw_request(proxy, method, path, {"Authorization": "Bearer sk-wrong"}, body)[0]
        good_key = raw_request(proxy, method, path, {"Authorization": f"Bearer {CLIENT_KEY}"}, body)[0]
        if (method, path) in PUBLIC:
            assert no_key == 200 and wrong_key == 200, (method, path)
        else:
            assert no_key == 401 and wrong_key == 401, (method, path, no_key, wrong_key)
            assert good_key != 401, (method, path)


@pytest.mark.parametrize("path", ["/invocations", "/docs", "/openapi.json", "/v1/completions", "/", "/v1/embeddings"])
def test_unknown_paths_are_denied_before_routing(zoo, path):
    proxy, _, _ = zoo
    assert raw_request(proxy, "GET", path)[0] == 401
    assert raw_request(proxy, "POST", path, body=b"{}")[0] == 401
    assert raw_request(proxy, "GET", path, auth())[0] in (404, 405)


@pytest.mark.parametrize("target", [
    "/health/", "//health", "/%68ealth", "/health%2f", "/health%2F", "/./health", "/HEALTH", "/health;x",
    "/health/../v1/models", "/v1//models", "/v1/models/", "/%2Fv1/models", "/v1/%6dodels", "/v1/models%00",
    "//v1/chat/completions", "/v1/chat/completions/", "http://127.0.0.1/v1/models", "/health/%2e%2e/v1/models",
])
def test_path_tricks_never_reach_a_route_without_a_key(zoo, target):
    proxy, _, _ = zoo
    status, body = raw_request(proxy, "GET", target)
    assert status in (400, 401), (target, status)          # 400: the HTTP server rejects the target itself
    assert b"answer from" not in body and b'"object": "list"' not in body


def test_liveness_answers_with_a_query_string_but_only_on_its_exact_path(zoo):
    proxy, _, _ = zoo
    assert raw_request(proxy, "GET", "/health?probe=1")[0] == 200
    assert raw_request(proxy, "POST", "/health")[0] == 401


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "internal.admin", "127.0.0.1:1", ""])
def test_a_forged_host_header_grants_nothing(zoo, host):
    proxy, _, _ = zoo
    assert raw_request(proxy, "GET", "/v1/models", {"Host": host})[0] == 401
    assert raw_request(proxy, "GET", "/metrics", {"Host": host, "X-Forwarded-For": "127.0.0.1"})[0] == 401


@pytest.mark.parametrize("value", [
    "", "Bearer", "Bearer ", f"Bearer  {CLIENT_KEY}", f"bearer{CLIENT_KEY}", f"Basic {CLIENT_KEY}",
    f"Bearer {CLIENT_KEY} extra", f"Token {CLIENT_KEY}", CLIENT_KEY, f"Bearer {CLIENT_KEY},Bearer x", "Bearer =", "Bearer null", "Bearer undefined", f"Bearer {CLIENT_KEY[:-1]}",
    f"Bearer {CLIENT_KEY}x", "Bearer \u00e9t\u00e9",
])
def test_a_malformed_or_wrong_authorization_header_is_refused(zoo, value):
    # (trailing spaces or tabs are not here: HTTP defines them as outside the field value, RFC 9110 5.5)
    proxy, stubs, _ = zoo
    before = stubs["alpha"].requests + stubs["beta"].requests
    status, body = raw_request(proxy, "POST", "/v1/chat/completions", {"Authorization": value},
                               b'{"model":"alpha","messages":[{"role":"user","content":"hi"}]}')
    assert status in (400, 401), (value, status)
    assert stubs["alpha"].requests + stubs["beta"].requests == before


def test_two_authorization_headers_are_refused_even_if_one_is_valid(zoo):
    proxy, _, _ = zoo
    for pair in ([f"Bearer {CLIENT_KEY}", "Bearer sk-wrong"], ["Bearer sk-wrong", f"Bearer {CLIENT_KEY}"],
                 [f"Bearer {CLIENT_KEY}", f"Bearer {CLIENT_KEY}"]):
        assert raw_request(proxy, "GET", "/v1/models", {"Authorization": pair})[0] == 401


def test_a_key_given_as_its_sha256_digest_in_the_config_is_accepted(tmp_path):
    other = "sk-hashed-client-key-42"
    with proxy_for(tmp_path, {"alpha": StubUpstream("alpha")},
                   auth={"client_key_sha256": [sha256_hex(other)]}) as (proxy, _):
        assert httpx.get(f"{proxy.url}/v1/models", headers=auth(other)).status_code == 200
        assert httpx.get(f"{proxy.url}/v1/models", headers=auth(CLIENT_KEY)).status_code == 401


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(zoo):
    proxy, stubs, _ = zoo
    big = chat("x" * 10_000, model="alpha")
    declared = httpx.post(f"{proxy.url}/v1/chat/completions", json=big, headers=auth())
    chunked = httpx.post(f"{proxy.url}/v1/chat/completions", headers={**auth(), "content-type": "application/json"},
                         content=iter([b'{"model":"alpha","messages":[{"role":"user","content":"', b"x" * 5000,
                                       b'"}]}']))
    assert declared.status_code == 413 and "max_body_bytes" in declared.json()["error"]["message"]
    assert chunked.status_code == 413 and "max_body_bytes" in chunked.json()["error"]["message"]


def test_too_many_messages_is_a_400_naming_the_limit(zoo):
    proxy, _, _ = zoo
    body = {"model": "alpha", "messages": [{"role": "user", "content": "hi"}] * 4}
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=auth())
    assert r.status_code == 400 and "max_messages" in r.json()["error"]["message"]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"model":"alpha"}', b'{"model":"alpha","messages":[]}',
                                  b'{"model":3,"messages":[{"role":"user","content":"hi"}]}'])
def test_malformed_requests_are_a_400_in_openai_error_format(zoo, body):
    proxy, _, _ = zoo
    r = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers=auth())
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_the_client_cannot_choose_the_upstream(zoo):
    proxy, stubs, servers = zoo
    evil = StubUpstream("evil")
    from modelsat.serve.loopback import LoopbackServer
    with LoopbackServer(evil) as evil_server:
        body = chat("hi", model="alpha", base_url=f"{evil_server.url}/v1", api_base=f"{evil_server.url}/v1")
        headers = {**auth(), "X-Forwarded-Host": f"127.0.0.1:{evil_server.port}",
                   "X-Upstream-Url": f"{evil_server.url}/v1", "Forwarded": f"host=127.0.0.1:{evil_server.port}"}
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers)
        r2 = httpx.post(f"{proxy.url}/v1/chat/completions", json=chat("hi", model=f"{evil_server.url}/v1"),
                        headers=auth())
    assert r.status_code == 200 and r.json()["model"] == "alpha"
    assert r2.status_code == 404
    assert evil.requests == 0
    assert "x-upstream-url" not in stubs["alpha"].last_headers and "forwarded" not in stubs["alpha"].last_headers


def test_canary_keys_never_appear_in_logs_or_error_bodies(tmp_path, caplog, capfd):
    canary_client = "sk-canary-client-0c7a1b2d9e"
    canary_wrong = "sk-canary-wrong-5e6f7a8b9c"
    stubs = {"alpha": StubUpstream("alpha", mode="echo_headers"), "beta": StubUpstream("beta", mode="error500"),
             "gamma": StubUpstream("gamma", mode="drop")}
    bodies: list[str] = []
    caplog.set_level(logging.DEBUG)
    with proxy_for(tmp_path, stubs, access_log=True,
                   auth={"client_key_sha256": [sha256_hex(canary_client)]}) as (proxy, _):
        url = f"{proxy.url}/v1/chat/completions"
        for headers in ({"Authorization": f"Bearer {canary_wrong}"}, {"Authorization": f"Basic {canary_wrong}"},
                        {"Authorization": f"Bearer {canary_client}"}, {"Authorization": f"Bearer {canary_client} x"}):
            for model in ("alpha", "beta", "modelsat", "gamma", "unknown"):
                r = httpx.post(url, json=chat("a poem", model=model, stream=model == "gamma"), headers=headers)
                bodies.append(r.text + str(r.headers))
            for key in (canary_wrong, canary_client):
                bodies.append(httpx.get(f"{proxy.url}/v1/models?api_key={key}", headers=headers).text)
        echoed = httpx.post(url, json=chat("hi", model="alpha"), headers=auth(canary_client))
    out, err = capfd.readouterr()
    served = [rec for rec in caplog.records if not rec.name.startswith(("httpx", "httpcore"))]   # not this client's
    logged = "\n".join(rec.getMessage() + str(rec.args) for rec in served) + out + err
    assert echoed.status_code == 400 and "[redacted]" in echoed.text     # the upstream echoed its key: removed
    assert "uvicorn.access" in {rec.name for rec in served}              # the access log was captured
    assert "upstream beta" in logged                                      # and so were the proxy's own logs
    assert "/v1/models?[query removed]" in logged                         # with the query-string requests
    for secret in (canary_client, canary_wrong, upstream_key("alpha"), upstream_key("beta"), upstream_key("gamma")):
        assert secret not in logged, "a key reached the logs"
        assert all(secret not in b for b in bodies), "a key reached an error body"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_name_is_case_insensitive(zoo, scheme):
    proxy, _, _ = zoo
    assert raw_request(proxy, "GET", "/v1/models", {"Authorization": f"{scheme} {CLIENT_KEY}"})[0] == 200
    assert raw_request(proxy, "GET", "/v1/models", {"Authorization": f"{scheme} sk-wrong"})[0] == 401


def test_head_on_liveness_is_200_without_a_key_and_without_a_body(zoo):
    proxy, _, _ = zoo
    assert raw_request(proxy, "HEAD", "/health") == (200, b"")
    assert raw_request(proxy, "HEAD", "/v1/models")[0] == 401


def test_either_of_two_client_keys_works_and_a_removed_one_stops_working_on_reload(tmp_path, monkeypatch):
    """Key rotation: both keys are served while clients move; the config reloaded without the old key
    (a restart, or a new app) refuses it."""
    old, new = "sk-rotation-old-1a2b3c", "sk-rotation-new-4d5e6f"
    stubs = {"alpha": StubUpstream("alpha")}
    rotating = {"client_keys_env": ["CLIENT_KEY"], "client_key_sha256": [sha256_hex(old), sha256_hex(new)]}
    with proxy_for(tmp_path, stubs, auth=rotating) as (proxy, _):
        during = [httpx.get(f"{proxy.url}/v1/models", headers=auth(k)).status_code for k in (old, new, CLIENT_KEY)]
        wrong = httpx.get(f"{proxy.url}/v1/models", headers=auth("sk-rotation-neither")).status_code
    with proxy_for(tmp_path, stubs, auth={"client_key_sha256": [sha256_hex(new)]}) as (proxy, _):
        after = [httpx.get(f"{proxy.url}/v1/models", headers=auth(k)).status_code for k in (old, new, CLIENT_KEY)]
    assert during == [200, 200, 200] and wrong == 401
    assert after == [401, 200, 401]


def test_two_client_keys_from_environment_variables_both_work(tmp_path):
    from modelsat.serve.app import make_app
    from modelsat.serve.config import parse_config
    from modelsat.serve.loopback import LoopbackServer
    cfg = parse_config({"models": [{"name": "a", "base_url": "http://127.0.0.1:9/v1"}],
                        "auth": {"client_keys_env": ["KEY_ONE", "KEY_TWO"]}})
    app = make_app(cfg, router=None, environ={"KEY_ONE": "sk-first-key-111", "KEY_TWO": "sk-second-key-222"})
    with LoopbackServer(app) as server:
        codes = [httpx.get(f"{server.url}/v1/models", headers=auth(k)).status_code
                 for k in ("sk-first-key-111", "sk-second-key-222", "sk-third-key-333")]
    assert codes == [200, 200, 401]


def test_allow_unauthenticated_serves_without_a_key_and_is_refused_without_it(tmp_path):
    from modelsat.errors import ModelsatError
    from modelsat.serve.config import parse_config
    stubs = {"alpha": StubUpstream("alpha")}
    with proxy_for(tmp_path, stubs, auth={"allow_unauthenticated": True}) as (proxy, _):
        bare = httpx.post(f"{proxy.url}/v1/chat/completions", json=chat("hi", model="alpha"))
        anything = httpx.get(f"{proxy.url}/v1/models", headers=auth("sk-anything"))
    assert bare.status_code == 200 and bare.json()["model"] == "alpha" and anything.status_code == 200
    with pytest.raises(ModelsatError, match="no client keys"):
        parse_config({"models": [{"name": "a", "base_url": "http://127.0.0.1:9/v1"}],
                      "auth": {"allow_unauthenticated": False}})
