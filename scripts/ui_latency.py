"""The console's Route page against `POST /v1/route`, the same instructions on the same proxy in one run.

The proxy is `modelsat ui`'s (the shipped router over the shipped default zoo, each model behind a loopback
stub upstream). For each instruction, in turn: `POST /v1/route` timed by the client (request sent to JSON read),
then the Route page in headless Chromium timed by the page itself (Route pressed to the ranking drawn: the
`/v1/explain` call, its JSON and the drawing). Each instruction is new to both, so neither reads a cached
embedding. Prints the median and 90th percentile of each and their ratio (the bar is <= 1.5).

    .venv/bin/python scripts/ui_latency.py [--n 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

CHROMIUM = "/usr/bin/chromium"
KEY = "sk-ui-latency"
TOPICS = ["the derivative of x^3 sin x", "why the Roman Republic fell", "how vaccines train the immune system",
          "the time complexity of merge sort", "what a p-value means", "how a transistor amplifies a signal",
          "the causes of inflation", "Kant's categorical imperative", "how photosynthesis stores energy",
          "the difference between TCP and UDP", "what the Krebs cycle produces", "how to balance a redox reaction",
          "the main ideas of Keynesian economics", "the structure of DNA", "how a bill becomes law in the US"]
FORMS = ["Explain {} in three sentences.", "A student asks about {}: answer briefly.", "Summarise {} for an exam."]


def instructions(n: int) -> list[str]:
    """n distinct instructions, two per round (one for each side), none seen before by the embedding memo."""
    out = [f.format(t) for f in FORMS for t in TOPICS]
    stamp = time.strftime("%H%M%S")
    return [f"{text} ({stamp}-{i})" for i, text in enumerate(out * (1 + 2 * n // len(out)))][:2 * n]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30, help="instructions timed on each side (default 30)")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("needs playwright: pip install -e '.[ui-test]' (and scripts/install-browser.sh for Chromium)")
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs {CHROMIUM}: run scripts/install-browser.sh as root")
    from modelsat.aptitude.zoo_dir import add_model, init_zoo
    from modelsat.serve.loopback import LoopbackServer, StubUpstream
    from modelsat.serve.ui import console_app
    from modelsat.routers.modelsat.router import shipped_router_dir
    shipped_zoo = shipped_router_dir().parent / "default_zoo"
    profiles = sorted(p for p in shipped_zoo.glob("*.json"))
    texts = instructions(args.n)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        zoo = Path(tmp) / "zoo"
        init_zoo(zoo)
        for i, p in enumerate(profiles):
            up = stack.enter_context(LoopbackServer(StubUpstream(p.stem), access_log=False, log_level="error"))
            add_model(zoo, p, f"{up.url}/v1", {"input": 0.1 * (i + 1), "output": 0.3 * (i + 1)})
        app = console_app(zoo, environ=dict(os.environ, MODELSAT_CLIENT_KEY=KEY))
        server = stack.enter_context(LoopbackServer(app, access_log=False, log_level="warning"))
        auth = {"Authorization": f"Bearer {KEY}"}
        client = stack.enter_context(httpx.Client(base_url=server.url, headers=auth, timeout=120))
        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        stack.callback(browser.close)
        page = browser.new_page()
        page.goto(f"{server.url}/ui")
        page.get_by_label("Client key").fill(KEY)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("navigation", name="Pages").wait_for()

        drawing: list[float] = []

        def page_ms(text: str) -> float:
            page.evaluate("() => { const d = document.getElementById('route-status').dataset; delete d.ms; }")
            page.get_by_label("Instruction", exact=True).fill(text)
            page.get_by_role("button", name="Route", exact=True).click()
            page.wait_for_selector("#route-status[data-ms]", timeout=120_000)
            status = page.locator("#route-status")
            drawing.append(float(status.get_attribute("data-draw-ms")))
            return float(status.get_attribute("data-ms"))

        def route_ms(text: str) -> float:
            t0 = time.perf_counter()
            r = client.post("/v1/route", json={"messages": [{"role": "user", "content": text}]})
            r.json()
            r.raise_for_status()
            return (time.perf_counter() - t0) * 1000

        for w in ("warm-up one", "warm-up two"):         # lazy loading, first connections
            route_ms(w), page_ms(w + " page")
        api, ui = [], []
        drawing.clear()
        for i in range(args.n):
            api.append(route_ms(texts[2 * i]))
            ui.append(page_ms(texts[2 * i + 1]))
    rows = [("POST /v1/route (client)", api), ("Route page (Route pressed to ranking drawn)", ui),
            ("  of which drawing the page", drawing)]
    print(f"{len(profiles)} candidates, shipped router, {args.n} instructions each, {os.cpu_count()} CPUs")
    print(f"{'':46s} {'median ms':>10s} {'p90 ms':>10s}")
    for name, xs in rows:
        print(f"{name:46s} {statistics.median(xs):10.1f} {statistics.quantiles(xs, n=10)[-1]:10.1f}")
    ratio = statistics.median(ui) / statistics.median(api)
    print(f"ratio of medians (page / route): {ratio:.2f} (bar: <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
