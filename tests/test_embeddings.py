"""The MiniLM embedding cache: what is stored, what is not (live instructions in the proxy and `modelsat route`)."""

from __future__ import annotations

import sqlite3

import httpx
import numpy as np

from modelsat import embeddings
from modelsat.serve.loopback import StubUpstream


def cached_keys(cache) -> set[str]:
    path = cache / embeddings.cache_file().name
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        return {k for (k,) in db.execute("SELECT k FROM emb")}


def test_transient_vectors_are_used_but_never_written_and_cached_ones_are_still_read(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSAT_CACHE", str(tmp_path))
    text = "What is the capital of the country whose flag has a maple leaf? (cache test 1)"
    with embeddings.transient():
        v_transient = embeddings.embed([text])
    assert embeddings._key(text) not in cached_keys(tmp_path)
    assert embeddings.in_disk_cache([text]) == [False]
    v_stored = embeddings.embed([text])
    assert embeddings._key(text) in cached_keys(tmp_path)
    assert embeddings.in_disk_cache([text, text + " (another)"]) == [True, False]
    # a live vector may be encoded in bfloat16 (embeddings.live_dtype), a stored one always in float32
    assert float(v_transient[0] @ v_stored[0]) > 0.9999
    with embeddings.transient():   # a cached vector is read, not recomputed
        np.testing.assert_array_equal(embeddings.embed([text]), v_stored)


def test_live_vectors_are_bf16_only_where_the_cpu_has_it_natively_and_float32_when_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSAT_CACHE", str(tmp_path))
    texts = ["A 45-year-old patient presents with fatigue and cold intolerance; TSH is high. Treatment?",
             "Solve for x: 3x + 5 = 20. (live dtype test)", "def add(a, b): return a + b  # what does this do?"]
    full = embeddings.encode(texts)
    live = embeddings.encode(texts, live=True)
    assert live.dtype == np.float32 and live.shape == full.shape
    np.testing.assert_allclose(np.linalg.norm(live, axis=1), 1.0, atol=1e-5)
    cosines = (live * full).sum(1)
    assert (cosines > 0.9999).all(), cosines
    assert embeddings.live_dtype() in ("bfloat16", "float32")
    if embeddings.live_dtype() == "float32":
        np.testing.assert_array_equal(live, full)
    monkeypatch.setenv("MODELSAT_LIVE_BF16", "0")
    assert embeddings.live_dtype() == "float32"
    np.testing.assert_array_equal(embeddings.encode(texts, live=True), full)


def test_the_proxy_and_route_never_write_a_users_instruction_to_disk(tmp_path, monkeypatch):
    from modelsat.cli.route import route_one
    from modelsat.routers.profile_prior import ProfilePrior
    from test_serve_support import auth, chat, proxy_for, write_profile
    cache = tmp_path / "cache"
    monkeypatch.setenv("MODELSAT_CACHE", str(cache))
    secret = "Please review my confidential merger memo for Project Bluebird (cache test 2)"
    stubs = {"alpha": StubUpstream("alpha"), "beta": StubUpstream("beta")}
    with proxy_for(tmp_path, stubs, router=ProfilePrior()) as (proxy, _):
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json=chat(secret), headers=auth(), timeout=60)
    assert r.status_code == 200, r.text
    other = "Summarise the attached patient record for Jane Roe (cache test 3)"
    from modelsat.aptitude.profile import Profile
    profiles = [Profile.load(write_profile(tmp_path, m)) for m in ("alpha", "beta")]
    assert route_one(other, ProfilePrior(), profiles)["chosen"] in ("alpha", "beta")
    keys = cached_keys(cache)
    assert embeddings._key(secret) not in keys and embeddings._key(other) not in keys
    embeddings.embed([secret])   # outside a live request the same text is cached: the check above can fail
    assert embeddings._key(secret) in cached_keys(cache)


def test_inside_one_transient_block_a_text_is_encoded_once_and_forgotten_after(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSAT_CACHE", str(tmp_path))
    encoded: list[str] = []
    real = embeddings.encode

    def counting(texts, **kw):
        encoded.extend(texts)
        return real(texts, **kw)

    monkeypatch.setattr(embeddings, "encode", counting)
    text = "Route this live request once, however many parts of the router read it (cache test 4)"
    with embeddings.transient():
        first = embeddings.embed([text])
        np.testing.assert_array_equal(embeddings.embed([text, text]), np.vstack([first, first]))
    assert encoded == [text]
    with embeddings.transient():   # a new block remembers nothing of the last one
        embeddings.embed([text])
    assert encoded == [text, text] and embeddings._key(text) not in cached_keys(tmp_path)


def test_static_features_are_unit_norm_bags_of_minilm_token_vectors_and_never_touch_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSAT_CACHE", str(tmp_path))
    texts = ["Solve 3x + 5 = 20 for x.", "Which enzyme digests starch in the mouth?", ""]
    x = embeddings.static_encode(texts)
    assert x.shape == (3, embeddings.DIM) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x[:2], axis=1), 1.0, atol=1e-5)
    assert not x[2].any()                                   # no token: the zero vector
    np.testing.assert_array_equal(embeddings.static_encode(texts[:1])[0], x[0])   # batch-independent
    # a bag of words: word order does not matter, words do
    a, b, c = embeddings.static_encode(["the dog bit the man", "the man bit the dog", "photosynthesis in plants"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert float(a @ c) < 0.99
    assert not cached_keys(tmp_path)
