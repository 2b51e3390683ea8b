"""The web console (`/ui`, serve/ui.py) on a real proxy over loopback upstreams: its API behind the client key,
and the three pages in a real browser (Debian's Chromium driven by Playwright), which never reach beyond
loopback. Screenshots go to $MODELSAT_UI_SHOTS (default: a temporary folder); run with -s to see the paths."""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.aptitude.shipped import shipped_test
from modelsat.aptitude.zoo_dir import add_model, init_zoo, read_index
from modelsat.policies import tradeoff
from modelsat.serve.loopback import LoopbackServer, StubUpstream
from modelsat.serve.ui import ASSETS, asset_bytes, console_app

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "modelsat" / "shipped" / "default_zoo"
BENCHMARK_RESULTS = Path(__file__).resolve().parent / "data" / "ui_benchmark_results.json"
KEY = "sk-console-test-42"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHROMIUM = Path("/usr/bin/chromium")
INSTRUCTION = "Solve for x: 3x + 7 = 22. Show each step of the algebra."
# two real profiles, dear, and a weak one that is nearly free: max quality picks a dear one, a high λ the cheap one
PRICES = {"Meta-Llama-3_1-8B": {"input": 5.0, "output": 15.0},
          "Mixtral-8x7B-Instruct-v0.1": {"input": 8.0, "output": 24.0},
          "budget-model": {"input": 0.01, "output": 0.02}}


def weak_profile(folder: Path, name: str) -> Path:
    test = shipped_test()
    return Profile(name, test.version, {s: SubjectScore(0.1, 20) for s in test.subject_names}).save(
        folder / f"{name}-taken.json")


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """(console base URL, zoo folder, {model: stub upstream URL}): `console_app` over a zoo folder of three models
    with loopback stub upstreams, and a benchmark folder (its report written by the code from a small real run's
    results.json) on the Results page."""
    tmp = tmp_path_factory.mktemp("console")
    with ExitStack() as stack:
        names = [*PRICES, "gemma-7b"]
        ups = {n: stack.enter_context(LoopbackServer(StubUpstream(n), access_log=False, log_level="error"))
               for n in names}
        zoo = tmp / "zoo"
        init_zoo(zoo)
        for n in PRICES:
            profile = weak_profile(tmp, n) if n == "budget-model" else SHIPPED / f"{n}.json"
            add_model(zoo, profile, f"{ups[n].url}/v1", PRICES[n])
        bench = tmp / "bench-routellm-pair"
        bench.mkdir()
        from modelsat.evaluate.report import write_report
        results = json.loads(BENCHMARK_RESULTS.read_text())
        shutil.copy(BENCHMARK_RESULTS, bench / "results.json")
        write_report(results, bench)
        app = console_app(zoo, [bench], environ=dict(os.environ, MODELSAT_CLIENT_KEY=KEY))
        server = stack.enter_context(LoopbackServer(app, access_log=False, log_level="warning"))
        httpx.post(f"{server.url}/v1/explain", json={"instruction": "warm up"}, headers=AUTH, timeout=300)
        yield server.url, zoo, {n: f"{u.url}/v1" for n, u in ups.items()}


# ---- the API, over plain HTTP ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path", [("POST", "/v1/explain"), ("GET", "/v1/zoo"), ("GET", "/v1/zoo/health"),
                                         ("POST", "/v1/zoo/models"), ("DELETE", "/v1/zoo/models/gemma-7b"),
                                         ("GET", "/v1/results"), ("GET", "/v1/results/0"),
                                         ("GET", "/v1/results/0/plots/zoo_routellm-pair.png")])
def test_the_console_api_refuses_a_request_without_a_valid_key(console, method, path):
    url = console[0]
    body = {"instruction": INSTRUCTION} if method == "POST" else None
    for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": KEY}):
        r = httpx.request(method, url + path, json=body, headers=headers)
        assert r.status_code == 401, (path, headers, r.text)
    assert httpx.request(method, url + path, json=body, headers=AUTH, timeout=120).status_code != 401


def test_only_the_page_itself_is_served_without_a_key_and_it_may_reach_this_origin_alone(console):
    url = console[0]
    for path in ASSETS:
        r = httpx.get(url + path.decode())
        assert r.status_code == 200 and r.content
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "connect-src 'self'" in r.headers["content-security-policy"]
    page = httpx.get(url + "/ui").text
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(u.startswith(("/ui/", "#", "data:")) for u in links), links     # nothing from elsewhere
    css = httpx.get(url + "/ui/console.css").text
    assert "url(" not in css and "@import" not in css
    for variant in ("/ui/", "//ui", "/ui/../v1/zoo", "/ui%2Fconsole.js", "/ui/index.html"):
        assert httpx.get(url + variant).status_code == 401, variant
    stated = re.search(r"([0-9,]+) bytes in all", (ROOT / "docs" / "guides" / "console.md").read_text())
    assert stated and int(stated.group(1).replace(",", "")) == asset_bytes(), "update the size in console.md"


def test_explain_gives_every_candidate_p_cost_and_the_tradeoff_choice(console):
    url = console[0]
    data = httpx.post(f"{url}/v1/explain", json={"instruction": INSTRUCTION, "lambda": 0}, headers=AUTH,
                      timeout=120).json()
    names = [c["model"] for c in data["candidates"]]
    assert sorted(names) == sorted(PRICES)
    p = np.array([c["p"] for c in data["candidates"]])
    cost = np.array([c["expected_cost_usd"] for c in data["candidates"]])
    assert ((p >= 0) & (p <= 1)).all() and (cost > 0).all()
    assert data["chosen"] == tradeoff(p[None], cost[None], 0.0, names).chosen_models[0] == data["ranking"][0]
    assert data["correction"]["kind"] == "none" and all(c["correction"] == 0 for c in data["candidates"])
    assert len(data["subjects"]) == 5 and abs(sum(s["weight"] for s in data["subjects"])
                                              + data["other_subjects_weight"] - 1) < 1e-6
    assert "mathematics" in data["subjects"][0]["subject"]


@pytest.mark.parametrize("body,field", [({"instruction": ""}, "instruction"), ({"instruction": 3}, "instruction"),
                                        ({"instruction": "x", "lambda": -1}, "lambda"),
                                        ({"instruction": "x", "lambda": "a lot"}, "lambda")])
def test_explain_names_the_bad_field(console, body, field):
    r = httpx.post(f"{console[0]}/v1/explain", json=body, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith(field)


def test_an_upload_with_a_bad_price_or_profile_is_refused_and_the_zoo_is_unchanged(console):
    url, zoo, ups = console
    before = read_index(zoo)
    good = json.loads((SHIPPED / "gemma-7b.json").read_text())
    for body, words in [({"profile": good, "base_url": ups["gemma-7b"], "price": "-1"}, "--price"),
                        ({"profile": good, "base_url": "ftp://x", "price": "1"}, "--base-url"),
                        ({"profile": {"model": "x"}, "filename": "x.json", "base_url": ups["gemma-7b"],
                          "price": "1"}, "uploaded file 'x.json'"),
                        ({"profile": {**good, "test_version": "ffffffffffff"}, "base_url": ups["gemma-7b"],
                          "price": "1"}, "ffffffffffff"),
                        ({"profile": good, "price": "1"}, "base_url")]:
        r = httpx.post(f"{url}/v1/zoo/models", json=body, headers=AUTH)
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
        assert "modelsat-upload-" not in r.text                    # no server path in the message
    assert read_index(zoo) == before


def test_a_plot_outside_the_benchmark_folder_is_not_served(console):
    url = console[0]
    for name in ("..%2Fresults.json", "results.json", "x.png"):
        assert httpx.get(f"{url}/v1/results/0/plots/{name}", headers=AUTH).status_code == 404
    assert httpx.get(f"{url}/v1/results/7", headers=AUTH).status_code == 404


# ---- the pages, in a real browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (install it with scripts/install-browser.sh, as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no playwright: pip install -e '.[ui-test]'")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("MODELSAT_UI_SHOTS") or tmp_path_factory.mktemp("ui-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def signed_in(browser, url: str, shots: Path | None = None):
    """A page signed in to the console at `url` (the sign-in form shot into `shots` first, when given); at the end,
    every request it made must have stayed on loopback."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(f"{url}/ui")
    pg.get_by_label("Client key").wait_for()
    if shots is not None:
        pg.screenshot(path=str(shots / "login.png"))
    pg.get_by_label("Client key").fill(KEY)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("navigation", name="Pages").wait_for()
    pg.requests = requests
    yield pg
    context.close()
    outside = [u for u in requests if urlparse(u).scheme not in ("data", "blob")
               and urlparse(u).hostname != "127.0.0.1"]
    assert requests and not outside, outside


@pytest.fixture
def page(browser, console, shots):
    """A signed-in page on the console (every request it makes must stay on loopback)."""
    with signed_in(browser, console[0], shots) as pg:
        yield pg


def route(pg, text: str = INSTRUCTION) -> None:
    pg.get_by_label("Instruction", exact=True).fill(text)
    pg.get_by_role("button", name="Route", exact=True).click()
    pg.wait_for_selector("#route-status[data-ms]")


def shown_ranking(pg) -> list[str]:
    return pg.eval_on_selector_all("#ranking tbody tr", "rows => rows.map(r => r.dataset.model)")


def test_route_page_ranks_the_candidates_as_the_route_endpoint_does(page, console, shots):
    route(page)
    api = httpx.post(f"{console[0]}/v1/route", headers=AUTH, timeout=120,
                     json={"messages": [{"role": "user", "content": INSTRUCTION}]}).json()
    assert shown_ranking(page) == [c["model"] for c in api["candidates"]]
    assert page.locator("#chosen").get_attribute("data-model") == api["model"]
    explained = httpx.post(f"{console[0]}/v1/explain", json={"instruction": INSTRUCTION}, headers=AUTH,
                           timeout=120).json()
    assert shown_ranking(page) == explained["ranking"]
    by_route = {a["model"]: a for a in api["candidates"]}
    for c in explained["candidates"]:          # the same P and expected cost as the proxy routes on
        assert by_route[c["model"]]["p"] == pytest.approx(c["p"], abs=1e-12)
        assert by_route[c["model"]]["expected_cost_usd"] == pytest.approx(c["expected_cost_usd"], rel=1e-12)
        row = page.locator(f'#ranking tr[data-model="{c["model"]}"]')
        assert f"{100 * c['p']:.1f} %" in row.inner_text()
    assert "no learned correction" in page.locator("#why-correction").inner_text()
    shown = [s["subject"] for i, s in enumerate(explained["subjects"]) if i == 0 or s["weight"] >= 0.005]
    assert page.eval_on_selector_all("#why-subjects tbody th", "cells => cells.map(c => c.textContent)") == shown
    page.screenshot(path=str(shots / "route.png"), full_page=True)
    print(f"\nscreenshot: {shots / 'route.png'}")


def test_the_slider_reranks_in_the_page_by_the_tradeoff_rule_and_ends_on_the_cheap_model(page, console, shots):
    route(page)
    explained = httpx.post(f"{console[0]}/v1/explain", json={"instruction": INSTRUCTION}, headers=AUTH,
                           timeout=120).json()
    names = [c["model"] for c in explained["candidates"]]
    p = np.array([[c["p"] for c in explained["candidates"]]])
    cost = np.array([[c["expected_cost_usd"] for c in explained["candidates"]]])
    first = page.locator("#chosen").get_attribute("data-model")
    assert first != "budget-model"
    calls_before = sum("/v1/" in u for u in page.requests)
    slider = page.get_by_label("Cost trade-off λ (probability per USD)")
    seen = []
    for position in range(0, 201, 8):
        slider.fill(str(position))
        lam = float(page.locator("#lambda-value").input_value())
        chosen = page.locator("#chosen").get_attribute("data-model")
        assert chosen == tradeoff(p, cost, lam, names).chosen_models[0], (position, lam)
        seen.append(chosen)
    slider.press("End")                                     # the keyboard moves it too
    assert page.locator("#chosen").get_attribute("data-model") == "budget-model"
    assert seen[0] == first and seen[-1] == "budget-model"
    assert sum("/v1/" in u for u in page.requests) == calls_before        # no routing call while sliding
    page.screenshot(path=str(shots / "route-cheap.png"), full_page=True)


def test_every_control_has_a_label_and_routing_works_from_the_keyboard(page):
    page.keyboard.press("Tab")                   # the skip link, then the pages, to the instruction box
    page.locator("#instruction").focus()
    page.keyboard.type("What does the mitochondrion do in a cell?")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#route-status[data-ms]")
    page.locator("#lambda-slider").focus()
    page.keyboard.press("End")
    assert page.locator("#chosen").get_attribute("data-model") == "budget-model"
    for hash_ in ("#route", "#zoo", "#results"):
        page.goto(page.url.split("#")[0] + hash_)
        page.wait_for_timeout(300)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(e => e.offsetParent !== null)
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
            .map(e => e.outerHTML)""")
        assert not unlabelled, (hash_, unlabelled)


def test_send_forwards_through_the_proxy_and_shows_the_reply_and_its_latency(page):
    route(page)
    chosen = page.locator("#chosen").get_attribute("data-model")
    page.get_by_role("button", name=f"Send to {chosen}").click()
    page.wait_for_selector("#reply:not([hidden])")
    assert page.locator("#reply").inner_text() == f"answer from {chosen}"
    assert f"{chosen} answered in" in page.locator("#send-status").inner_text()


def test_zoo_page_compares_profiles_and_adds_and_removes_a_model(page, console, shots):
    url, zoo, ups = console
    page.get_by_role("link", name="Zoo").click()
    page.wait_for_selector('#zoo-table tr[data-model="budget-model"]')
    page.get_by_role("button", name="Check endpoints now").click()
    page.wait_for_selector("#zoo-table td.ok >> text=answers")
    page.get_by_label("Profile JSON").set_input_files(str(SHIPPED / "gemma-7b.json"))
    page.get_by_label("Endpoint base URL").fill(ups["gemma-7b"])
    page.get_by_label("Price, USD per million tokens").fill("0.2,0.4")
    page.get_by_role("button", name="Add model").click()
    page.wait_for_selector("#add-status >> text=the proxy routes to it now")
    assert "gemma-7b" in [m["name"] for m in read_index(zoo)["models"]]
    assert page.locator("#profile-chart svg circle").count() == 50            # the first model's markers
    assert page.locator("#profile-legend span").count() == 3                 # two by default, then the new one
    page.screenshot(path=str(shots / "zoo.png"), full_page=True)
    print(f"\nscreenshot: {shots / 'zoo.png'}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="remove gemma-7b").click()
    page.wait_for_selector("#add-status >> text=no longer routes to it")
    assert "gemma-7b" not in [m["name"] for m in read_index(zoo)["models"]]
    assert not (zoo / "gemma-7b.json").exists()


def test_results_page_shows_the_benchmark_tables_and_plots(page, shots):
    page.get_by_role("link", name="Results").click()
    page.wait_for_selector("#results-status >> text=results.md and")
    assert page.locator("#results-body table").count() >= 1
    assert "routellm-pair" in page.locator("#results-body").inner_text()
    img = page.locator("#results-plots img").first
    img.wait_for()
    assert img.evaluate("i => i.complete && i.naturalWidth > 0")
    page.screenshot(path=str(shots / "results.png"), full_page=True)
    print(f"\nscreenshot: {shots / 'results.png'}")


# ---- modelsat ui ----------------------------------------------------------------------------------------------------
def test_modelsat_ui_serves_the_console_on_loopback_with_the_key_it_prints(console, tmp_path):
    import subprocess
    import sys
    import threading
    zoo = console[1]
    env = {k: v for k, v in os.environ.items() if k != "MODELSAT_CLIENT_KEY"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("modelsat")), "ui", "--zoo", str(zoo), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    guard = threading.Timer(300, proc.kill)
    guard.start()
    try:
        key = url = None
        for line in proc.stdout:
            if "sign in with this key" in line:
                key = line.rsplit(" ", 1)[1].strip()
            if line.startswith("open http://"):
                url = line.split()[1].rsplit("/ui", 1)[0]
                break
        assert key and url and url.startswith("http://127.0.0.1:"), "modelsat ui printed no key or address"
        for _ in range(600):                       # the address is printed just before uvicorn listens
            try:
                page = httpx.get(f"{url}/ui")
                break
            except httpx.ConnectError:
                threading.Event().wait(0.1)
        assert page.status_code == 200
        assert httpx.get(f"{url}/v1/zoo").status_code == 401
        zoo_view = httpx.get(f"{url}/v1/zoo", headers={"Authorization": f"Bearer {key}"}).json()
        assert {m["name"] for m in zoo_view["models"]} >= set(PRICES)
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(timeout=60)


def test_modelsat_ui_refuses_a_folder_that_is_not_a_benchmark(console, tmp_path):
    import subprocess
    import sys
    r = subprocess.run([str(Path(sys.executable).with_name("modelsat")), "ui", "--zoo", str(console[1]),
                        "--results", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"--results {tmp_path}: not a benchmark folder" in r.stderr


# ---- a router without probabilities ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory, console):
    """The console over the same models routed by the `random` router (scores, not probabilities)."""
    import yaml

    from modelsat.routers.random_router import RandomRouter
    tmp = tmp_path_factory.mktemp("uncalibrated")
    router_dir = RandomRouter(seed=3).fit(None, []).save(tmp / "random-router")
    zoo = tmp / "zoo"
    init_zoo(zoo)
    for m in read_index(console[1])["models"]:
        add_model(zoo, console[1] / m["profile"], m["base_url"], m["price"])
    index = yaml.safe_load((zoo / "zoo.yaml").read_text())
    index["serve"]["router"] = str(router_dir)
    (zoo / "zoo.yaml").write_text(yaml.safe_dump(index))
    app = console_app(zoo, environ=dict(os.environ, MODELSAT_CLIENT_KEY=KEY))
    with LoopbackServer(app, access_log=False, log_level="warning") as server:
        yield server.url


def test_a_router_without_probabilities_is_explained_by_its_scores_and_ranked_as_the_proxy_ranks(uncalibrated):
    data = httpx.post(f"{uncalibrated}/v1/explain", json={"instruction": INSTRUCTION}, headers=AUTH,
                      timeout=120).json()
    assert data["probabilities"] is False and all(c["p"] is None for c in data["candidates"])
    api = httpx.post(f"{uncalibrated}/v1/route", headers=AUTH, timeout=120,
                     json={"messages": [{"role": "user", "content": INSTRUCTION}]}).json()
    assert data["ranking"] == [c["model"] for c in api["candidates"]] and data["chosen"] == api["model"]
    assert data["correction"]["kind"] == "unavailable"
    r = httpx.post(f"{uncalibrated}/v1/explain", json={"instruction": INSTRUCTION, "lambda": 100}, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("lambda: the random router gives scores")


def test_the_route_page_shows_scores_and_no_slider_for_a_router_without_probabilities(browser, uncalibrated):
    with signed_in(browser, uncalibrated) as pg:
        route(pg)
        assert pg.locator("#p-head").inner_text() == "score (not a probability)"
        assert pg.locator("#lambda-slider").is_disabled()
        assert "gives scores, not probabilities" in pg.locator("#no-probabilities").inner_text()
