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
    v_stored = embeddings.embed([text])
    assert embeddings._key(text) in cached_keys(tmp_path)
    np.testing.assert_allclose(v_transient, v_stored, atol=1e-6)
    with embeddings.transient():   # a cached vector is read, not recomputed
        np.testing.assert_array_equal(embeddings.embed([text]), v_stored)


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
