"""Predicted quality and cost of every routing policy on a user's own prompts, against always sending to one model.

`modelsat savings LOG --zoo Z` reads a log of prompts (no answers needed), asks the router for each candidate's
calibrated P(good answer) (`Router.predict_proba`) and prices each call (`policies.expected_cost`), then runs every
policy of `modelsat.policies` on the same prompts. What it reports is **predicted**: the mean P of the chosen
models (the expected share of good answers, if the router's calibration holds on these prompts) and their expected
cost, never a measured outcome.

The log is streamed in chunks: only per-policy sums (mean P, mean cost, requests per model) are kept, so a log of
any length is read in bounded memory. The one exception is the first `fit_prompts` prompts, whose P and costs are
kept to fit the budget policy's λ and to scale the default knobs; that slice is routed like every other prompt.

Two formats, chosen per file from the first non-blank line (or named):

- `jsonl`: one OpenAI chat request a line, `{"messages": [...]}`; the instruction routed on is the last user
  message, as the proxy takes it (`serve.routing.instruction_of`); the prompt's tokens for its cost count every
  message's text (what an upstream is billed for).
- `text`: one prompt a line.

A line that cannot be routed (not JSON, no `messages`, no user message, empty, longer than `max_line_bytes`, not
UTF-8) is counted by reason, and the first `keep_bad` are listed by line number; none is dropped silently.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from modelsat import policies
from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError

FORMATS = ("auto", "jsonl", "text")
DEFAULT_MAX_LINE_BYTES = 200_000
DEFAULT_CHUNK = 256
DEFAULT_FIT_PROMPTS = 1000
DEFAULT_KEEP_BAD = 20
# the table's tradeoff rows: λ at which the zoo's typical price gap per request (cheapest to dearest candidate,
# median over the first prompts) is worth this much P
TABLE_GAP_WORTH = (0.03, 0.1, 0.3)
SWEEP_GAP_WORTH = (0.001, 10.0)          # the tradeoff curve's range of the same quantity
TABLE_DELTAS = (0.02, 0.05, 0.1)
SWEEP_DELTAS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
# the default budgets: this share of the way from the cheapest model's mean cost to max-quality's
BUDGET_SHARES = (0.25, 0.5)
SINGLE_MARKERS = "o^vs<>pPXhH"
PREDICTED = ("Predicted, not measured: quality is the mean of the router's P(good answer) for the chosen model "
             "(the expected share of good answers, if its calibration holds on these prompts); cost is the "
             "expected USD per request from the zoo's prices and estimated token counts. No answer was read.")


# ---- reading the log ----------------------------------------------------------------------------------------------
@dataclass
class Prompt:
    """One routable line: its number in the file (from 1), the instruction routed on, its estimated prompt tokens
    (as the proxy estimates them), and the request's own cap on output tokens (`max_tokens` /
    `max_completion_tokens`), if any."""

    line: int
    instruction: str
    prompt_tokens: int
    output_cap: int | None = None


@dataclass
class BadLines:
    """Lines that could not be routed: a count per reason, and the first `keep` by line number."""

    keep: int = DEFAULT_KEEP_BAD
    count: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    first: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, reason: str, detail: str = "") -> None:
        """Counts line `line` under `reason`; keeps it (with `detail`) while fewer than `keep` are kept."""
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if len(self.first) < self.keep:
            self.first.append((line, f"{reason}: {detail}" if detail else reason))

    def to_dict(self) -> dict:
        """{count, by_reason, first: [{line, reason}], listed}: what the report writes."""
        return {"count": self.count, "by_reason": dict(self.by_reason), "listed": len(self.first),
                "first": [{"line": n, "reason": r} for n, r in self.first]}


def _output_cap(request: dict) -> int | None:
    """The request's cap on completion tokens (the lower of max_completion_tokens and max_tokens), if any."""
    caps = [request.get(k) for k in ("max_completion_tokens", "max_tokens")]
    caps = [c for c in caps if isinstance(c, int) and not isinstance(c, bool) and c > 0]
    return min(caps) if caps else None


class PromptLog:
    """A log of prompts read line by line in chunks, never whole; `bad` counts what could not be routed.

    `fmt`: "jsonl", "text" or "auto" (jsonl when the first non-blank line starts with `{`, else text);
    `format_reason` says how it was chosen. `bytes_read`, `lines` and `prompts` grow as chunks are read.
    """

    def __init__(self, path: str | Path, fmt: str = "auto", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 keep_bad: int = DEFAULT_KEEP_BAD):
        self.path = Path(path)
        if fmt not in FORMATS:
            raise ModelsatError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if max_line_bytes < 1:
            raise ModelsatError(f"--max-line-bytes must be at least 1, got {max_line_bytes}")
        if not self.path.exists():
            raise ModelsatError(f"{self.path}: no such file (the prompt log: .jsonl of chat requests, or one "
                                "prompt a line)")
        if not self.path.is_file():
            raise ModelsatError(f"{self.path}: not a file (the prompt log: .jsonl of chat requests, or one "
                                "prompt a line)")
        self.size = self.path.stat().st_size
        self.max_line_bytes = max_line_bytes
        self.bad = BadLines(keep=keep_bad)
        self.bytes_read = 0
        self.lines = 0
        self.prompts = 0
        if fmt == "auto":
            first = self._first_line()
            if first is None:
                self.format, self.format_reason = "text", "the file has no non-blank line"
            elif first.lstrip().startswith(b"{"):
                self.format, self.format_reason = "jsonl", "its first non-blank line is a JSON object"
            else:
                self.format, self.format_reason = "text", "its first non-blank line is not a JSON object"
        else:
            self.format, self.format_reason = fmt, "named by --format"

    def _first_line(self) -> bytes | None:
        with open(self.path, "rb") as f:
            while True:
                line = f.readline(self.max_line_bytes + 1)
                if not line:
                    return None
                if line.strip():
                    return line

    def _raw_lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes without the line end) per line; None for a line over `max_line_bytes`, whose
        rest is skipped without being held."""
        limit = self.max_line_bytes
        with open(self.path, "rb") as f:
            number = 0
            while True:
                raw = f.readline(limit + 1)
                if not raw:
                    return
                number += 1
                self.bytes_read += len(raw)
                too_long = len(raw.rstrip(b"\r\n")) > limit
                if too_long:
                    while not raw.endswith(b"\n"):      # skip the rest of the line, a megabyte at a time
                        raw = f.readline(1 << 20)
                        if not raw:
                            break
                        self.bytes_read += len(raw)
                self.lines = number
                yield number, None if too_long else raw.rstrip(b"\r\n")

    def _parse(self, number: int, raw: bytes | None) -> Prompt | None:
        if raw is None:
            self.bad.add(number, "too long", f"over {self.max_line_bytes:,} bytes")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad.add(number, "not UTF-8", f"byte {exc.start}")
            return None
        if not text.strip():
            self.bad.add(number, "empty line")
            return None
        if self.format == "text":
            return Prompt(number, text, policies.prompt_tokens(text))
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            self.bad.add(number, "invalid JSON", f"{exc.msg} at column {exc.colno}")
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
            self.bad.add(number, "no messages list", 'expected {"messages": [...]}')
            return None
        from modelsat.serve.routing import instruction_of, request_tokens
        messages = obj["messages"]
        if not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
            self.bad.add(number, "no user message")
            return None
        instruction = instruction_of(messages)
        if not instruction.strip():
            self.bad.add(number, "empty user message")
            return None
        return Prompt(number, instruction, request_tokens(obj)[0], _output_cap(obj))

    def chunks(self, size: int = DEFAULT_CHUNK) -> Iterator[list[Prompt]]:
        """The routable prompts in file order, `size` at a time (the last chunk may be shorter)."""
        if size < 1:
            raise ModelsatError(f"--chunk must be at least 1, got {size}")
        chunk: list[Prompt] = []
        for number, raw in self._raw_lines():
            prompt = self._parse(number, raw)
            if prompt is not None:
                chunk.append(prompt)
                self.prompts += 1
                if len(chunk) == size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


# ---- prices and P -------------------------------------------------------------------------------------------------
def zoo_prices(candidates: Sequence[Profile], zoo_name: str) -> np.ndarray:
    """(m, 2) USD per million input and output tokens of each candidate; an error naming every model without one."""
    prices, missing = [], []
    for c in candidates:
        p = policies.split_price(c.notes.get("price_per_mtok"))
        if p is None:
            missing.append(c.model)
        prices.append(p or (0.0, 0.0))
    if missing:
        raise ModelsatError(f"zoo {zoo_name}: {len(missing)} of {len(candidates)} models have no price "
                            f"({', '.join(missing)}); savings compares costs, so every model needs one: "
                            "`price:` in the zoo YAML, or `modelsat zoo add DIR PROFILE.json --base-url URL "
                            "--price IN[,OUT] --replace` (--price 0 for a free model)")
    return np.asarray(prices, dtype=np.float64)


def score_chunk(router, candidates: Sequence[Profile], chunk: Sequence[Prompt], prices: np.ndarray,
                output_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, cost), each (n, m), for one chunk. Instructions are embedded in memory only (`embeddings.transient`),
    in a block per chunk, so nothing of the prompts reaches the disk and the memo never outgrows a chunk."""
    from modelsat.embeddings import transient
    with transient():
        P = np.asarray(router.predict_proba([p.instruction for p in chunk], list(candidates)), dtype=np.float64)
    out = np.array([[output_tokens if p.output_cap is None else min(output_tokens, p.output_cap)] for p in chunk],
                   dtype=np.float64)                       # (n, 1): a request's max_tokens caps its answer
    tokens = np.array([p.prompt_tokens for p in chunk], dtype=np.float64)
    C = policies.expected_cost(tokens, prices[:, 0], prices[:, 1], out)
    return P, np.asarray(C, dtype=np.float64)


# ---- policies and their sums --------------------------------------------------------------------------------------
def round_125(x: float) -> float:
    """The 1-2-5 value (…, 0.5, 1, 2, 5, 10, …) nearest to x on a log scale (x > 0)."""
    exp = math.floor(math.log10(x))
    best = min((m * 10.0 ** e for e in (exp - 1, exp, exp + 1) for m in (1, 2, 5)),
               key=lambda v: abs(math.log10(v) - math.log10(x)))
    return float(f"{best:.6g}")


def grid_125(lo: float, hi: float) -> list[float]:
    """Every 1-2-5 value from round_125(lo) to round_125(hi)."""
    out, exp = [], math.floor(math.log10(round_125(lo)))
    top = round_125(hi)
    while True:
        for m in (1, 2, 5):
            v = float(f"{m * 10.0 ** exp:.6g}")
            if v > top * (1 + 1e-9):
                return out
            if v >= round_125(lo) * (1 - 1e-9):
                out.append(v)
        exp += 1


def price_gap(C: np.ndarray) -> float:
    """The zoo's typical price gap per request: the median over requests of (dearest − cheapest candidate), USD."""
    return float(np.median(C.max(axis=1) - C.min(axis=1))) if len(C) else 0.0


def _knob(value, name: str) -> float:
    """A knob as a finite number >= 0, or an error naming the option."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ModelsatError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ModelsatError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_options(*, lambdas=None, deltas=None, budgets=None, fit_prompts: int = DEFAULT_FIT_PROMPTS,
                  output_tokens: int = policies.DEFAULT_OUTPUT_TOKENS, chunk: int = DEFAULT_CHUNK) -> None:
    """Refuses a knob out of range, naming its option, before anything is loaded or read."""
    for v in lambdas or ():
        _knob(v, "--lambda (probability per USD)")
    for v in deltas or ():
        if _knob(v, "--delta") > 1:
            raise ModelsatError(f"--delta is a difference of probabilities, at most 1; got {v:g}")
    for v in budgets or ():
        _knob(v, "--budget (mean USD per request)")
    for value, name in ((fit_prompts, "--fit-prompts"), (chunk, "--chunk")):
        if value < 1:
            raise ModelsatError(f"{name} must be at least 1, got {value}")
    if output_tokens < 0:
        raise ModelsatError(f"--output-tokens must be >= 0, got {output_tokens}")


def _round_sig(x: float, digits: int = 2) -> float:
    return float(f"{x:.{digits}g}") if x > 0 else 0.0


@dataclass
class Point:
    """One policy at one knob, with its sums over the prompts routed so far."""

    policy: str
    label: str
    params: dict
    choose: Callable[[np.ndarray, np.ndarray], policies.Choices]
    in_table: bool
    m: int
    n: int = 0
    sum_p: float = 0.0
    sum_cost: float = 0.0
    counts: np.ndarray = None

    def __post_init__(self):
        self.counts = np.zeros(self.m, dtype=np.int64)

    def add(self, P: np.ndarray, C: np.ndarray) -> None:
        """Adds one chunk's choices to the sums."""
        ch = self.choose(P, C)
        self.n += len(ch.index)
        self.sum_p += float(ch.p.sum())
        self.sum_cost += float(ch.cost.sum())
        self.counts += np.bincount(ch.index, minlength=self.m)


@dataclass
class Plan:
    """The knobs of every policy, fixed from the first slice of the log before the rest is read."""

    lambdas_table: list[float]
    lambdas_sweep: list[float]
    deltas_table: list[float]
    deltas_sweep: list[float]
    budgets: list[dict]          # {budget (USD/request), fit: BudgetFit, default: bool}
    gap: float                   # the zoo's typical price gap per request on the slice, USD
    fit_prompts: int             # prompts of the slice


def make_plan(P: np.ndarray, C: np.ndarray, lambdas: Sequence[float] | None = None,
              deltas: Sequence[float] | None = None, budgets: Sequence[float] | None = None) -> Plan:
    """Knobs from the first slice (P, C): the given λ, δ and budgets, or defaults scaled to the zoo's prices.

    Default λ: those at which the typical price gap is worth 0.03, 0.1 and 0.3 of P (rounded to 1-2-5); the
    curve sweeps 0.001 to 10. Default budgets: a quarter and half of the way from the cheapest single model's
    mean cost to max-quality's. Every budget's λ is fitted on the slice (`policies.fit_budget`).
    """
    gap = price_gap(C)
    if gap > 0:
        table_l = [round_125(w / gap) for w in TABLE_GAP_WORTH]
        sweep_l = grid_125(SWEEP_GAP_WORTH[0] / gap, SWEEP_GAP_WORTH[1] / gap)
    else:          # every candidate costs the same: λ changes nothing but ties
        table_l, sweep_l = [], []
    if lambdas:
        table_l = [_knob(v, "--lambda (probability per USD)") for v in lambdas]
    if deltas:
        table_d = [_knob(v, "--delta") for v in deltas]
        for d in table_d:
            if d > 1:
                raise ModelsatError(f"--delta is a difference of probabilities, at most 1; got {d:g}")
    else:
        table_d = list(TABLE_DELTAS)
    if budgets:
        targets = [(_knob(b, "--budget (mean USD per request)"), False) for b in budgets]
    else:
        cheapest = float(C.mean(axis=0).min())
        top = policies.max_quality(P, C).mean_cost
        targets = [(_round_sig(cheapest + s * (top - cheapest) * 1000) / 1000, True)
                   for s in BUDGET_SHARES] if top > cheapest else []
    fitted = [{"budget": b, "fit": policies.fit_budget(P, C, b), "default": default}
              for b, default in dict.fromkeys(targets)]
    return Plan(table_l, sorted(set(sweep_l) | set(table_l)), table_d, sorted(set(SWEEP_DELTAS) | set(table_d)),
                fitted, gap, len(P))


def _fmt_usd_1000(usd_per_request: float) -> str:
    v = usd_per_request * 1000
    return f"${v:.3g}/1k"


def make_points(plan: Plan, m: int) -> list[Point]:
    """Every policy row: max-quality, tradeoff over the λ sweep, threshold over the δ sweep, each budget."""
    pts = [Point("max-quality", "max-quality", {}, policies.max_quality, True, m)]
    for lam in plan.lambdas_sweep:
        pts.append(Point("tradeoff", f"tradeoff λ={lam:g}", {"lambda": lam},
                         lambda P, C, lam=lam: policies.tradeoff(P, C, lam), lam in plan.lambdas_table, m))
    for d in plan.deltas_sweep:
        pts.append(Point("threshold", f"threshold δ={d:g}", {"delta": d},
                         lambda P, C, d=d: policies.threshold(P, C, delta=d), d in plan.deltas_table, m))
    for b in plan.budgets:
        fit = b["fit"]
        params = {"budget_usd_per_request": b["budget"], "budget_usd_per_1000": b["budget"] * 1000,
                  "lambda": fit.lam, "met_on_fit_slice": fit.met, "fitted_on_prompts": fit.items,
                  "fit_slice_mean_cost": fit.mean_cost, "fit_slice_mean_p": fit.mean_p,
                  "default_target": b["default"]}
        label = f"budget {_fmt_usd_1000(b['budget'])} (λ={fit.lam:.3g}" + ("" if fit.met else ", not met") + ")"
        pts.append(Point("budget", label, params,
                         lambda P, C, lam=fit.lam: policies.tradeoff(P, C, lam), True, m))
    return pts


class Tally:
    """Per-candidate and per-policy sums over every prompt routed: all that is kept of the log."""

    def __init__(self, models: Sequence[str], plan: Plan):
        self.models = list(models)
        self.plan = plan
        self.n = 0
        self.sum_p = np.zeros(len(models))
        self.sum_cost = np.zeros(len(models))
        self.points = make_points(plan, len(models))

    def add(self, P: np.ndarray, C: np.ndarray) -> None:
        """Adds one chunk's P and costs (each (n, m)): the single models' sums and every policy's choices."""
        P, C = policies.check_inputs(P, C)
        self.n += len(P)
        self.sum_p += P.sum(axis=0)
        self.sum_cost += C.sum(axis=0)
        for pt in self.points:
            pt.add(P, C)

    def rows(self) -> list[dict]:
        """One row per single model and per policy point: mean P, mean cost, cost per 1,000, share per model,
        and both against the best single model (the highest mean P; ties to the cheaper)."""
        n = max(self.n, 1)
        mean_p, mean_cost = self.sum_p / n, self.sum_cost / n
        top = mean_p.max()
        best = int(np.argmin(np.where(mean_p == top, mean_cost, np.inf)))
        rows = []

        def row(kind, name, policy, params, p, c, counts, in_table):
            base_c = mean_cost[best]
            return {"kind": kind, "name": name, "policy": policy, "params": params, "in_table": in_table,
                    "mean_p": p, "mean_cost_usd": c, "cost_per_1000_usd": 1000 * c,
                    "cost_vs_best_single": c / base_c if base_c > 0 else None,
                    "p_vs_best_single": p - mean_p[best],
                    "share": {m: int(k) / n for m, k in zip(self.models, counts) if k}}

        for j, m in enumerate(self.models):
            counts = np.zeros(len(self.models), dtype=np.int64)
            counts[j] = self.n
            r = row("single", m, "always " + m, {}, float(mean_p[j]), float(mean_cost[j]), counts, True)
            r["best_single"] = j == best
            rows.append(r)
        for pt in self.points:
            rows.append(row("policy", pt.label, pt.policy, pt.params, pt.sum_p / n, pt.sum_cost / n, pt.counts,
                            pt.in_table))
        return rows

    @property
    def best_single(self) -> str:
        """The single model with the highest mean P (ties to the cheaper)."""
        return next(r["name"] for r in self.rows() if r.get("best_single"))


# ---- the run ------------------------------------------------------------------------------------------------------
def run_savings(log: PromptLog, router, candidates: Sequence[Profile], prices: np.ndarray, *,
                output_tokens: int = policies.DEFAULT_OUTPUT_TOKENS, chunk: int = DEFAULT_CHUNK,
                fit_prompts: int = DEFAULT_FIT_PROMPTS, lambdas: Sequence[float] | None = None,
                deltas: Sequence[float] | None = None, budgets: Sequence[float] | None = None,
                on_chunk: Callable[[PromptLog], None] | None = None) -> tuple[Tally, dict]:
    """Streams `log` through the router and every policy; returns the sums and timings ({seconds, prompts_per_s}).

    The chunks up to the first `fit_prompts` routable prompts are held (P and cost only) until the knobs are fixed
    on exactly those prompts (`make_plan`); after that each chunk is added to the sums and dropped.
    """
    check_options(lambdas=lambdas, deltas=deltas, budgets=budgets, fit_prompts=fit_prompts,
                  output_tokens=output_tokens, chunk=chunk)
    models = [c.model for c in candidates]
    started = time.perf_counter()
    router_s = 0.0
    held_P: list[np.ndarray] = []
    held_C: list[np.ndarray] = []
    held = 0
    tally: Tally | None = None

    def start_tally() -> Tally:
        P, C = np.concatenate(held_P), np.concatenate(held_C)
        t = Tally(models, make_plan(P[:fit_prompts], C[:fit_prompts], lambdas, deltas, budgets))
        t.add(P, C)
        return t

    for prompts in log.chunks(chunk):
        t0 = time.perf_counter()
        P, C = score_chunk(router, candidates, prompts, prices, output_tokens)
        router_s += time.perf_counter() - t0
        if tally is None:
            held_P.append(P)
            held_C.append(C)
            held += len(P)
            if held >= fit_prompts:
                tally = start_tally()
                held_P, held_C = [], []
        else:
            tally.add(P, C)
        if on_chunk is not None:
            on_chunk(log)
    if tally is None:
        if not held:
            listed = "; ".join(f"line {n}: {r}" for n, r in log.bad.first[:5])
            raise ModelsatError(f"{log.path}: no prompt to route ({log.lines:,} lines, {log.bad.count:,} bad"
                                + (f": {listed}" if listed else "") + f"); read as {log.format} because "
                                f"{log.format_reason}")
        tally = start_tally()
    seconds = time.perf_counter() - started
    return tally, {"seconds": seconds, "router_seconds": router_s,
                   "prompts_per_second": tally.n / seconds if seconds > 0 else None}


# ---- the report ---------------------------------------------------------------------------------------------------
def report(tally: Tally, log: PromptLog, zoo_name: str, candidates: Sequence[Profile], prices: np.ndarray,
           router_label: str, meaning: dict, output_tokens: int, timing: dict) -> dict:
    """Everything a reader needs to check the figures: the log, the zoo's prices, the router, the cost model,
    how the knobs were fixed, and every row (`in_table` marks those the table shows)."""
    from modelsat.evaluate.harness import utc_now
    plan = tally.plan
    return {
        "predicted": PREDICTED,
        "written": utc_now(),
        "log": {"path": str(log.path), "format": log.format, "format_reason": log.format_reason,
                "lines": log.lines, "prompts": tally.n, "max_line_bytes": log.max_line_bytes,
                "bad_lines": log.bad.to_dict()},
        "zoo": {"name": zoo_name, "models": [{"model": c.model, "price_per_mtok": {"input": float(pi),
                                                                                  "output": float(po)}}
                                             for c, (pi, po) in zip(candidates, prices)]},
        "router": {"label": router_label, "p_means": meaning["text"], "calibrated": meaning["kind"] == "probability"},
        "cost_model": {"prompt_tokens": f"ceil(characters / {policies.CHARS_PER_TOKEN}) of every message's text "
                                        "(jsonl) or of the line (text)",
                       "output_tokens": output_tokens,
                       "usd": "(input price x prompt tokens + output price x output tokens) / 1e6"},
        "knobs": {"fit_prompts": plan.fit_prompts,
                  "fit": f"the first {plan.fit_prompts:,} prompts of the log fixed the default knobs and every "
                         "budget's λ (policies.fit_budget); they are routed and counted like every other prompt",
                  "typical_price_gap_usd": plan.gap,
                  "lambda_unit": "probability per USD: a model costing Δ USD more per request is chosen only if "
                                 "its P is higher by more than λ·Δ",
                  "lambdas_table": plan.lambdas_table, "deltas_table": plan.deltas_table},
        "best_single": tally.best_single,
        "rows": tally.rows(),
        "timing": timing,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table_rows(result: dict) -> list[dict]:
    """The rows the table shows: every single model, then max-quality, the table's tradeoff, threshold and
    budget rows."""
    return [r for r in result["rows"] if r["in_table"]]


def share_text(share: dict, limit: int = 4) -> str:
    """'model 62%, model 30%, …': the largest shares first, at most `limit` named (under 0.5 %: '<1%')."""
    items = sorted(share.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{m} {100 * s:.0f}%" if s >= 0.005 else f"{m} <1%" for m, s in items[:limit])
    return text + (f", {len(items) - limit} more" if len(items) > limit else "")


def markdown(result: dict) -> str:
    """The report as Markdown: what the figures are, the table, the bad lines, how the knobs were set."""
    log, best = result["log"], result["best_single"]
    lines = [f"# Predicted savings: {Path(log['path']).name} on zoo {result['zoo']['name']}", "",
             f"**{result['predicted']}**", "",
             f"- log: `{log['path']}`, read as {log['format']} ({log['format_reason']}); {log['lines']:,} lines, "
             f"{log['prompts']:,} prompts routed, {log['bad_lines']['count']:,} bad lines",
             f"- router: {result['router']['label']}; P = {result['router']['p_means']}",
             f"- cost: prompt tokens = {result['cost_model']['prompt_tokens']}; "
             f"{result['cost_model']['output_tokens']} output tokens per call; "
             f"USD = {result['cost_model']['usd']}",
             f"- knobs: {result['knobs']['fit']}; λ in {result['knobs']['lambda_unit']}",
             f"- best single model (highest predicted quality): **{best}**",
             f"- written {result['written']}", "",
             "| row | predicted quality | vs best single | USD per request | USD per 1,000 | cost vs best single "
             "| traffic |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in table_rows(result):
        name = f"always {r['name']}" + (" (best single)" if r.get("best_single") else "") \
            if r["kind"] == "single" else r["name"]
        rel = "" if r["cost_vs_best_single"] is None else f"{r['cost_vs_best_single']:.2f}×"
        lines.append(f"| {name} | {_pct(r['mean_p'])} | {100 * r['p_vs_best_single']:+.1f} pp | "
                     f"{r['mean_cost_usd']:.6f} | {r['cost_per_1000_usd']:.4f} | {rel} | {share_text(r['share'])} |")
    if result["knobs"]["typical_price_gap_usd"] == 0 and not result["knobs"]["lambdas_table"]:
        lines += ["", "Every model costs the same per request here, so no tradeoff or budget row is shown: λ would "
                      "change nothing."]
    budget_rows = [r for r in result["rows"] if r["policy"] == "budget"]
    if any(not r["params"]["met_on_fit_slice"] for r in budget_rows):
        lines += ["", "A budget marked not met: even the cheapest model per request costs more than it on the "
                      "first prompts; its row sends every request to its cheapest model."]
    bad = log["bad_lines"]
    lines += ["", "## Bad lines", ""]
    if bad["count"]:
        lines.append(f"{bad['count']:,} lines could not be routed: "
                     + ", ".join(f"{k} {v:,}" for k, v in sorted(bad["by_reason"].items())) + "."
                     + (f" The first {bad['listed']}:" if bad["listed"] else ""))
        lines += [""] + [f"- line {b['line']}: {b['reason']}" for b in bad["first"]]
    else:
        lines.append("None: every line was routed.")
    t = result["timing"]
    lines += ["", f"Routed {log['prompts']:,} prompts in {t['seconds']:.1f} s "
                  f"({t['prompts_per_second'] or 0:.1f} prompts per second).",
              "", "The JSON beside this page holds every row of the curves in the plot (`in_table` marks this "
                  "table's rows)."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Cost per 1,000 requests against predicted quality: every single model as a point, each policy's curve
    (tradeoff over λ, threshold over δ) and the budget points; distinct colour and marker, legend outside."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    singles = [r for r in rows if r["kind"] == "single"]
    # single models: tab10 colours and markers on periods 10 and 11, so no two of 110 share both; policies in
    # black, told apart by line style and marker
    cmap = matplotlib.colormaps["tab10"]
    styles = {f"always {r['name']}": {"color": cmap(i % 10), "marker": SINGLE_MARKERS[i % len(SINGLE_MARKERS)]}
              for i, r in enumerate(singles)}
    styles.update({"max-quality": {"color": "gold", "marker": "*"},
                   "tradeoff (λ sweep)": {"color": "black", "marker": "o", "linestyle": "-"},
                   "threshold (δ sweep)": {"color": "dimgray", "marker": "s", "linestyle": "--"},
                   "budget": {"color": "white", "marker": "D"}})
    fig, ax = plt.subplots(figsize=(10, 5))
    for r in singles:
        s = styles[f"always {r['name']}"]
        ax.scatter(r["cost_per_1000_usd"], 100 * r["mean_p"], color=s["color"], marker=s["marker"], s=60,
                   label=f"always {r['name']}" + (" (best single)" if r.get("best_single") else ""),
                   edgecolors="black", linewidths=0.5, zorder=3)
    mq = next(r for r in rows if r["policy"] == "max-quality")
    for name, policy, key in (("tradeoff (λ sweep)", "tradeoff", "lambda"), ("threshold (δ sweep)", "threshold",
                                                                             "delta")):
        pts = sorted((r for r in rows if r["policy"] == policy), key=lambda r: r["params"][key])
        if pts:
            s = styles[name]
            ax.plot([mq["cost_per_1000_usd"]] + [r["cost_per_1000_usd"] for r in pts],
                    [100 * mq["mean_p"]] + [100 * r["mean_p"] for r in pts], color=s["color"],
                    marker=s["marker"], linestyle=s["linestyle"], markersize=3.5, linewidth=1.2, label=name,
                    zorder=2)
    s = styles["max-quality"]
    ax.scatter(mq["cost_per_1000_usd"], 100 * mq["mean_p"], color=s["color"], marker=s["marker"], s=200,
               label="max-quality", edgecolors="black", linewidths=0.5, zorder=4)
    budgets = [r for r in rows if r["policy"] == "budget"]
    if budgets:
        s = styles["budget"]
        ax.scatter([r["cost_per_1000_usd"] for r in budgets], [100 * r["mean_p"] for r in budgets],
                   color=s["color"], marker=s["marker"], s=80, label="budget", edgecolors="black",
                   linewidths=0.5, zorder=4)
        for r in budgets:
            ax.annotate(f"${r['params']['budget_usd_per_1000']:.3g}/1k", (r["cost_per_1000_usd"], 100 * r["mean_p"]),
                        textcoords="offset points", xytext=(5, -10), fontsize=7)
    costs = [r["cost_per_1000_usd"] for r in rows if r["cost_per_1000_usd"] > 0]
    if costs and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("predicted USD per 1,000 requests")
    ax.set_ylabel("predicted quality: mean P(good answer) (%)")
    ax.set_title(f"predicted (not measured): {Path(result['log']['path']).name}, {result['log']['prompts']:,} "
                 f"prompts, zoo {result['zoo']['name']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    from modelsat.files import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def write_outputs(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """savings.json, savings.md and savings.png in `out_dir`, each written atomically."""
    from modelsat.files import atomic_path, write_json_atomic
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json_atomic(result, out / "savings.json")}
    with atomic_path(out / "savings.md") as tmp:
        Path(tmp).write_text(markdown(result))
    paths["markdown"] = out / "savings.md"
    paths["plot"] = plot(result, out / "savings.png")
    return paths
