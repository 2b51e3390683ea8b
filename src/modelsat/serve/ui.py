"""The web console at /ui: why an instruction goes where it goes (Route), what each model is good at (Zoo),
and what a benchmark folder says (Results); issue 42.

Two parts, mounted on the proxy by `mount_console(app, watch)`:

- **The page** (`ui_static/`: one HTML file, one script, one style sheet, all in the package; no framework, no
  build step, nothing fetched from the network) is served at exactly `GET /ui`, `/ui/console.js` and
  `/ui/console.css`, before the proxy's client-key check: it holds no data, only a sign-in form. Its
  Content-Security-Policy lets it talk to this origin alone, so nothing the page does leaves the proxy.
- **Its JSON API** (below) sits behind the same client-key check as every other route: the page sends the key
  as `Authorization: Bearer`, from the browser tab's sessionStorage (never a URL or a cookie).

| route | what it answers |
|---|---|
| `POST /v1/explain` | every candidate's P(good answer), expected cost and score parts; the subjects the instruction was mapped to; the choice under the `tradeoff` policy at the λ given |
| `GET /v1/zoo` | each model's profile, price, endpoint and circuit-breaker state; whether the zoo can be changed here |
| `GET /v1/zoo/health` | each endpoint probed now (`GET {base_url}/models`) |
| `POST /v1/zoo/models` | add a model from an uploaded profile (the checks of `modelsat zoo add`) |
| `DELETE /v1/zoo/models/{name}` | take a model out (`modelsat zoo remove`) |
| `GET /v1/results`, `/v1/results/{i}`, `/v1/results/{i}/plots/{file}` | the benchmark folders given to `modelsat ui --results`: results.md and the plots |

The page re-ranks under another λ itself (`choose` in console.js applies `policies.tradeoff`'s rule: the highest
P − λ·cost, ties to the cheaper, then the first), so moving the slider makes no new routing call.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

import anyio
import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from modelsat.errors import ModelsatError
from modelsat.serve.auth import error_body

# what the browser may fetch without a key: the page itself, which carries no data (path -> file, media type)
ASSETS = {b"/ui": ("index.html", "text/html; charset=utf-8"),
          b"/ui/console.js": ("console.js", "text/javascript; charset=utf-8"),
          b"/ui/console.css": ("console.css", "text/css; charset=utf-8")}
# this origin only: no CDN, font or script from elsewhere, and no request to anywhere else
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-cache"),
                (b"x-frame-options", b"DENY")]
TOP_SUBJECTS = 5            # subjects listed under "why"; the rest of the weight is summed
PROBE_TIMEOUT_S = 3.0       # an endpoint that does not answer GET /models within this is "not answering"
PLOT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+\.png$")


def static_dir() -> Path:
    """The package folder holding the console's page, script and style sheet."""
    return Path(str(resources.files("modelsat") / "serve" / "ui_static"))


def asset_bytes() -> int:
    """Total size in bytes of everything the console's page loads (HTML, script, style sheet)."""
    return sum((static_dir() / name).stat().st_size for name, _ in ASSETS.values())


class ConsoleAssets:
    """Pure ASGI, outside the key check: serves the console's three files at their exact paths (GET/HEAD);
    every other request goes on to the proxy unchanged."""

    def __init__(self, app):
        self.app = app
        folder = static_dir()
        self.files = {path: ((folder / name).read_bytes(), media) for path, (name, media) in ASSETS.items()}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope.get("raw_path") in self.files:
            body, media = self.files[scope["raw_path"]]
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode()),
                                    *PAGE_HEADERS]})
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
            return
        await self.app(scope, receive, send)


def problem(status: int, message: str, code: Optional[str] = None) -> Response:
    """An OpenAI-style error response (the proxy's own error format)."""
    return Response(error_body(message, "invalid_request_error", code), status_code=status,
                    media_type="application/json")


async def json_body(request: Request) -> dict | Response:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return problem(400, "the request body is not JSON")
    if not isinstance(data, dict):
        return problem(400, f"expected a JSON object, got {type(data).__name__}")
    return data


# ---- Route: what the router weighed -------------------------------------------------------------------------------
def subject_map_of(router):
    """The subject map a router reads (its fitted profile prior's, its own, or the shipped one)."""
    for holder in (getattr(router, "prior_router_", None), router):
        sm = getattr(holder, "subject_map_", None)
        if sm is not None:
            return sm
    from modelsat.routers.subject_map import shipped
    return shipped()


def score_parts(router, instruction: str, profiles: Sequence) -> dict:
    """How a Model-SAT router's score of each candidate was made: the profile prior (expected accuracy at the
    instruction's subjects), the records prior's update of it (points of probability) and the learned
    correction (log-odds: 0 for a router without one). Other routers: `kind` "unavailable"."""
    from modelsat.routers.modelsat.router import ModelSATRouter
    if not isinstance(router, ModelSATRouter) or not router.preset_.model.has_prior:
        return {"kind": "unavailable", "text": f"the {router.name} router does not split its score into a prior "
                                               "and a correction"}
    base = router._base_prior([instruction], profiles)
    prior = router.prior([instruction], profiles)
    if router.prior_only:
        correction = np.zeros(len(profiles))
        text = (f"the {router.name} router has no learned correction: its score is the explicit prior (the "
                "profile read at the instruction's subjects, updated by the records prior), so the correction "
                "is 0 for every model")
        kind = "none"
    else:
        correction = router._lm_part(router.score([instruction], profiles), prior)[0]
        text = ("the learned correction (the capability-instruction LM) added this much to each model's prior "
                "log-odds")
        kind = "lm"
    return {"kind": kind, "text": text, "prior": base[0].tolist(), "records_update": (prior - base)[0].tolist(),
            "correction": np.asarray(correction, dtype=float).tolist()}


def explain(routing, instruction: str, lam: float) -> dict:
    """Everything the Route page shows for one instruction, over a RoutingService's candidates (call it holding
    the router's lock): each candidate's P and expected cost as the proxy routes on them, the score's parts, the
    subjects, and the `tradeoff` ranking at `lam`."""
    from modelsat.embeddings import transient
    from modelsat.policies import DEFAULT_OUTPUT_TOKENS, prompt_tokens, rank
    router, cands, probabilities = routing.router, routing.upstreams, routing.probabilities
    numbers = router.predict_proba if probabilities else router.score
    t0 = time.perf_counter()
    with transient():        # the instruction is embedded once, in memory only (as the proxy routes)
        p = np.asarray(numbers([instruction], routing.profiles), dtype=np.float64)[0]
        parts = score_parts(router, instruction, routing.profiles)
        sm = subject_map_of(router)
        w = sm.weights([instruction])[0]
    ms = (time.perf_counter() - t0) * 1000
    tokens = prompt_tokens(instruction)
    cost = routing.costs(routing.columns(None), tokens, DEFAULT_OUTPUT_TOKENS)
    # as the proxy ranks: by the policy on P, or, for a router without P, by its score (ties to the cheaper)
    order = rank(p, cost, "tradeoff", lam=lam) if probabilities else np.lexsort((cost, -p))
    top = np.argsort(-w, kind="stable")[:TOP_SUBJECTS]
    subjects = []
    for i in top:
        name = sm.subjects[i]
        scores = {u.name: u.profile.subjects.get(name) for u in cands}
        subjects.append({"subject": name, "weight": float(w[i]),
                         "accuracy": {m: (s.accuracy if s else None) for m, s in scores.items()},
                         "n_items": {m: (s.n_items if s else 0) for m, s in scores.items()}})
    rows = []
    for j, u in enumerate(cands):
        known = bool(routing.price_known[j])
        row = {"model": u.name, "p": float(p[j]) if probabilities else None, "score": float(p[j]),
               "expected_cost_usd": float(cost[j]) if known else None,
               "price": {"input": float(routing.price_in[j]), "output": float(routing.price_out[j])} if known else None,
               "mean_accuracy": u.profile.mean_accuracy}
        if parts["kind"] != "unavailable":
            row.update({k: parts[k][j] for k in ("prior", "records_update", "correction")})
        rows.append(row)
    return {"router": router.name, "probabilities": bool(probabilities),
            "calibrated": getattr(router, "calibrator_", None) is not None,
            "prompt_tokens": tokens, "expected_output_tokens": DEFAULT_OUTPUT_TOKENS, "candidates": rows,
            "subjects": subjects, "other_subjects_weight": float(max(0.0, 1.0 - w[top].sum())),
            "correction": {"kind": parts["kind"], "text": parts["text"]},
            "policy": "tradeoff", "params": {"lambda": lam}, "chosen": cands[order[0]].name,
            "ranking": [cands[j].name for j in order], "ms": round(ms, 3)}


# ---- Zoo ------------------------------------------------------------------------------------------------------------
def breaker_state(breaker) -> dict:
    """A circuit breaker as the page shows it: closed, open (skipped until its cool-down ends) or half-open."""
    if not breaker.is_open:
        state = "closed"
    elif time.monotonic() - breaker.opened_at >= breaker.cooldown_s:
        state = "half-open"
    else:
        state = "open"
    return {"state": state, "consecutive_failures": breaker.consecutive}


def zoo_view(upstreams: Sequence, folder: Optional[Path]) -> dict:
    """Each served model's profile, price, endpoint and breaker; whether the zoo can be changed from the page."""
    from modelsat.serve.routing import price_of
    subjects = sorted({s for u in upstreams if u.profile is not None for s in u.profile.subjects})
    models = []
    for u in upstreams:
        price = price_of(u)
        prof = u.profile
        models.append({"name": u.name, "base_url": u.cfg.base_url, "upstream_model": u.upstream_model,
                       "api_key_env": u.cfg.api_key_env,
                       "price": {"input": price[0], "output": price[1]} if price else None,
                       "breaker": breaker_state(u.breaker), "routable": prof is not None,
                       "mean_accuracy": prof.mean_accuracy if prof else None,
                       "accuracy": {s: sc.accuracy for s, sc in prof.subjects.items()} if prof else {},
                       "n_items": {s: sc.n_items for s, sc in prof.subjects.items()} if prof else {},
                       "test_version": prof.test_version if prof else None})
    return {"folder": folder.name if folder else None, "editable": folder is not None,
            "why_not_editable": None if folder else "this proxy serves a config file, not a zoo folder; start it "
                                                    "with `modelsat serve --zoo DIR` or `modelsat ui --zoo DIR` to "
                                                    "add and remove models here",
            "subjects": subjects, "models": models}


async def probe(upstream, client: httpx.AsyncClient) -> dict:
    """Whether an endpoint answers `GET {base_url}/models` now (status, milliseconds, or what went wrong)."""
    t0 = time.perf_counter()
    try:
        r = await client.get(f"{upstream.cfg.base_url}/models", headers=upstream.headers(False),
                             timeout=PROBE_TIMEOUT_S)
        ok, status, error = r.status_code < 300, r.status_code, None if r.status_code < 300 else f"HTTP {r.status_code}"
    except httpx.HTTPError as exc:
        ok, status = False, None
        error = upstream.redact(f"{type(exc).__name__}: {exc}".encode()).decode(errors="replace")[:200]
    return {"name": upstream.name, "ok": ok, "status": status, "ms": round((time.perf_counter() - t0) * 1000, 1),
            "error": error}


def add_uploaded(folder: Path, body: dict) -> dict:
    """Adds the uploaded profile to the zoo folder with `modelsat zoo add`'s checks; returns its index entry.
    Errors (ModelsatError) name the field or the uploaded file, never a path on the server."""
    from modelsat.aptitude.zoo_dir import add_model, parse_price
    profile = body.get("profile")
    filename = str(body.get("filename") or "profile.json")
    if not isinstance(profile, dict):
        raise ModelsatError("profile: upload a profile JSON file (made by `modelsat profile`)")
    for field in ("base_url", "price"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            raise ModelsatError(f"{field}: needed (a zoo folder is served, so each model has an endpoint and a "
                                "price; price 0 for a free model)")
    optional = {}
    for field in ("api_key_env", "upstream_model"):
        value = body.get(field)
        if value not in (None, "") and not isinstance(value, str):
            raise ModelsatError(f"{field}: expected text")
        optional[field] = value.strip() if value else None
    if optional["api_key_env"] and not os.environ.get(optional["api_key_env"]):
        raise ModelsatError(f"api_key_env: the server has no environment variable {optional['api_key_env']}; "
                            "set it where modelsat runs (the key stays there), then add the model")
    price = parse_price(body["price"])
    with tempfile.TemporaryDirectory(prefix="modelsat-upload-") as tmp:
        path = Path(tmp) / "profile.json"
        path.write_text(json.dumps(profile))
        try:
            return add_model(folder, path, body["base_url"].strip(), price, optional["api_key_env"],
                             optional["upstream_model"], bool(body.get("replace")))
        except ModelsatError as exc:
            raise ModelsatError(str(exc).replace(str(path), f"uploaded file {filename!r}")) from None


def remove_served(folder: Path, name: str) -> dict:
    """Takes `name` out of the zoo folder (`modelsat zoo remove`); refuses the last model a served zoo has."""
    from modelsat.aptitude.zoo_dir import read_index, remove_model
    names = [m["name"] for m in read_index(folder)["models"]]
    if name in names and len(names) == 1:
        raise ModelsatError(f"{name!r} is the zoo's only model; a served zoo needs one (add another first)")
    entry = remove_model(folder, name)
    entry.pop("api_key_env", None)
    return entry


# ---- Results --------------------------------------------------------------------------------------------------------
def results_view(folder: Path) -> dict:
    """A benchmark folder as the page shows it: results.md (the report's own text) and the names of its plots."""
    md = folder / "results.md"
    plots = sorted(p.name for p in (folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    return {"name": folder.name, "markdown": md.read_text() if md.is_file() else None, "plots": plots,
            "note": None if md.is_file() else f"{folder.name} has no results.md; write one with "
                                              "`modelsat benchmark --out DIR`"}


def check_results_folder(folder: Path) -> Path:
    """`folder` if it is a benchmark folder (holds results.md or results.json), else a ModelsatError."""
    if not folder.is_dir():
        raise ModelsatError(f"--results {folder}: no such folder")
    if not ((folder / "results.md").is_file() or (folder / "results.json").is_file()):
        raise ModelsatError(f"--results {folder}: not a benchmark folder (no results.md or results.json); make one "
                            "with `modelsat benchmark --out DIR`")
    return folder


# ---- mounting -------------------------------------------------------------------------------------------------------
def mount_console(app: FastAPI, watch=None) -> None:
    """Serves the console on `app` (the proxy of make_app): the page at /ui and its API. `watch` is the zoo
    folder's watch when the proxy serves one (then models can be added and removed from the page).
    Benchmark folders for the Results page are read from `app.state.console_results` (a list of paths)."""
    from modelsat.serve.zoo_folder import ZooFolderWatch
    folder = watch.folder if isinstance(watch, ZooFolderWatch) else None
    app.state.console_results = []
    app.add_middleware(ConsoleAssets)

    def routing_or_problem():
        routing = app.state.routing
        if routing is None:
            return problem(503, "this proxy has no router configured (set `router:` in the config)", "no_router")
        return routing

    @app.post("/v1/explain")
    async def explain_route(request: Request):
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        instruction = body.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            return problem(400, "instruction: give the text to route (a non-empty string)")
        lam = body.get("lambda", 0.0)
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not np.isfinite(lam) or lam < 0:
            return problem(400, "lambda: expected a number >= 0 (probability per USD)")
        routing = routing_or_problem()
        if isinstance(routing, Response):
            return routing
        if lam > 0 and not routing.probabilities:
            return problem(400, f"lambda: the {routing.router.name} router gives scores, not probabilities (it is "
                                "not calibrated), so it cannot weigh them against cost; ask with lambda 0")

        def work():
            with routing.exclusive():   # the router is never called from two threads at once
                return explain(routing, instruction, float(lam))
        try:
            return await anyio.to_thread.run_sync(work)
        except ModelsatError as exc:
            return problem(409, str(exc), "cannot_explain")

    @app.get("/v1/zoo")
    async def zoo():
        return zoo_view(app.state.upstreams, folder)

    @app.get("/v1/zoo/health")
    async def health():
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
            results = []
            async with anyio.create_task_group() as tg:
                for u in app.state.upstreams:
                    async def one(u=u):
                        results.append(await probe(u, client))
                    tg.start_soon(one)
        order = {u.name: i for i, u in enumerate(app.state.upstreams)}
        return {"endpoints": sorted(results, key=lambda r: order.get(r["name"], 0))}

    @app.post("/v1/zoo/models")
    async def add(request: Request):
        if folder is None:
            return problem(409, zoo_view([], None)["why_not_editable"], "zoo_not_editable")
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            entry = await anyio.to_thread.run_sync(add_uploaded, folder, body)
        except ModelsatError as exc:
            return problem(400, str(exc))
        entry.pop("api_key_env", None)
        return JSONResponse({"added": entry, "note": "the proxy takes the model in within a second"},
                            status_code=201)

    @app.delete("/v1/zoo/models/{name:path}")
    async def remove(name: str):
        if folder is None:
            return problem(409, zoo_view([], None)["why_not_editable"], "zoo_not_editable")
        try:
            entry = await anyio.to_thread.run_sync(remove_served, folder, name)
        except ModelsatError as exc:
            return problem(404 if "no model" in str(exc) else 400, str(exc))
        return {"removed": entry, "note": "the proxy stops routing to it within a second"}

    def results_folder(i: int) -> Path | Response:
        folders = app.state.console_results
        if not 0 <= i < len(folders):
            return problem(404, f"no benchmark folder {i}; this console has {len(folders)}", "not_found")
        return Path(folders[i])

    @app.get("/v1/results")
    async def results_list():
        return {"folders": [{"id": i, "name": Path(f).name} for i, f in enumerate(app.state.console_results)],
                "hint": "give benchmark folders with `modelsat ui --zoo DIR --results BENCH_DIR`"}

    @app.get("/v1/results/{i}")
    async def results_one(i: int):
        f = results_folder(i)
        return f if isinstance(f, Response) else results_view(f)

    @app.get("/v1/results/{i}/plots/{file}")
    async def results_plot(i: int, file: str):
        f = results_folder(i)
        if isinstance(f, Response):
            return f
        path = f / "plots" / file
        if not PLOT_NAME.match(file) or not path.is_file():
            return problem(404, f"no plot {file!r} in {f.name}", "not_found")
        return Response(path.read_bytes(), media_type="image/png", headers={"cache-control": "no-cache"})



def console_app(zoo_folder: str | os.PathLike, results: Sequence[str | os.PathLike] = (),
                environ: Optional[dict] = None) -> FastAPI:
    """The proxy of a zoo folder (as `modelsat serve --zoo DIR` builds it: changes to the folder taken in) with
    the benchmark folders `results` on the console's Results page: what `modelsat ui` serves."""
    from modelsat.serve.app import make_app
    from modelsat.serve.zoo_folder import ZooFolderWatch
    folders = [check_results_folder(Path(r)) for r in results]
    watch = ZooFolderWatch(zoo_folder)
    app = make_app(watch.load(), environ=environ, watch=watch)
    app.state.console_results = folders
    return app
