"""Routing policies: turn each candidate's probability of a good answer and its expected cost into a choice.

One module, shared by the CLI, the Python API, the benchmark and the proxy, so the same knob means the same
thing everywhere (design.md, "Contracts"; issue 41). Inputs are always

- `p`: (n, m) P(good answer) of each of m candidates for each of n requests, in [0, 1] (calibrated:
  `Router.predict_proba`), and
- `cost`: (n, m) or (m,) expected cost of each call in USD (`expected_cost`); 0 where a price is unknown,
  which the caller should say.

Policies (`POLICIES`), each with one knob:

- `max-quality`: the candidate with the highest P.
- `tradeoff`: the highest P − λ · cost. λ is in **probability per USD**: a candidate that costs Δ dollars more
  per request must raise P by more than λ · Δ to be chosen. λ = 0 is max-quality; a point of P (0.01) is
  worth 0.01 / λ USD (λ = 1: a cent; λ = 100: a hundredth of a cent); the larger λ, the cheaper the choices.
- `threshold`: the cheapest candidate whose P is within δ of the best candidate's P (δ ≥ 0, in probability),
  or whose P is at least an absolute τ (RouteLLM's threshold, generalised to m models). δ = 0 is max-quality.
- `budget`: a target mean cost per request B in USD ("at most $0.50 per 1,000 requests" is B = 0.0005).
  λ is the smallest that keeps the mean expected cost of the tradeoff choices at or below B, found by bisection
  (`fit_budget`) on validation items (or, without them, on the routed items themselves; no outcome is read),
  then applied as `tradeoff`.

Ties always go to the cheaper candidate, then to the first listed: max-quality, tradeoff with λ = 0 and
threshold with δ = 0 make the same choices. Every policy returns `Choices`: the index of the chosen candidate per
request, its P and expected cost, and every candidate's P and cost, so a user sees what was weighed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from modelsat.errors import ModelsatError

POLICIES = ("max-quality", "tradeoff", "threshold", "budget")
# the expected completion length used when neither the records nor the zoo give one (tokens). A typical
# chat answer; RouterBench's records cost out at a few hundred output tokens per item.
DEFAULT_OUTPUT_TOKENS = 300
BISECTION_STEPS = 100


class PolicyError(ModelsatError):
    """A policy asked for with a missing or invalid knob, or fed probabilities / costs it cannot use."""


@dataclass
class Choices:
    """What a policy chose for each of n requests among m candidates, and what it weighed."""

    policy: str
    index: np.ndarray              # (n,) the chosen candidate's column
    p: np.ndarray                  # (n,) its P(good answer)
    cost: np.ndarray               # (n,) its expected cost, USD
    candidate_p: np.ndarray        # (n, m) every candidate's P
    candidate_cost: np.ndarray     # (n, m) every candidate's expected cost, USD
    params: dict = field(default_factory=dict)    # the knob (λ, δ, τ, budget) and what was fitted
    models: list[str] | None = None               # candidate names, when given

    @property
    def chosen_models(self) -> list[str]:
        """The chosen candidate's name per request (needs `models`)."""
        if self.models is None:
            raise PolicyError("these choices were made without candidate names; pass models= to choose()")
        return [self.models[i] for i in self.index]

    @property
    def mean_p(self) -> float:
        """Mean P of the chosen candidates: the expected share of good answers."""
        return float(np.mean(self.p)) if len(self.p) else float("nan")

    @property
    def mean_cost(self) -> float:
        """Mean expected cost per request of the chosen candidates, USD."""
        return float(np.mean(self.cost)) if len(self.cost) else float("nan")


@dataclass
class BudgetFit:
    """The λ `fit_budget` found, and the mean cost and P its choices give on the items it was fitted on."""

    budget: float
    lam: float
    mean_cost: float
    mean_p: float
    met: bool          # False: even the cheapest candidate per request costs more than the budget on average
    items: int


def check_inputs(p, cost) -> tuple[np.ndarray, np.ndarray]:
    """(P, cost) as (n, m) float arrays; a clear error for NaN, out-of-range values or mismatched shapes."""
    P = np.asarray(p, dtype=np.float64)
    if P.ndim != 2:
        raise PolicyError(f"probabilities must be an (n_requests, n_candidates) table; got shape {P.shape}")
    if P.shape[1] == 0:
        raise PolicyError("no candidates to choose among (probabilities have 0 columns)")
    if np.isnan(P).any():
        r, c = np.argwhere(np.isnan(P))[0]
        raise PolicyError(f"probability of request {r}, candidate {c} is NaN")
    if P.size and (P.min() < 0 or P.max() > 1):
        raise PolicyError(f"probabilities must lie in [0, 1] (calibrated P, not raw scores: use "
                          f"Router.predict_proba); found {P.min():.4g} .. {P.max():.4g}")
    C = np.asarray(cost, dtype=np.float64)
    if C.ndim == 1:
        if C.shape[0] != P.shape[1]:
            raise PolicyError(f"costs: {C.shape[0]} values for {P.shape[1]} candidates")
        C = np.broadcast_to(C, P.shape)
    elif C.shape != P.shape:
        raise PolicyError(f"costs of shape {C.shape} do not match probabilities of shape {P.shape} "
                          "(give one cost per candidate, or one per request and candidate)")
    if np.isnan(C).any():
        where = np.argwhere(np.isnan(C))[0]
        raise PolicyError(f"cost of candidate {where[-1]} (request {where[0]}) is NaN; give 0 for a free or "
                          "unknown price and say so")
    if (C < 0).any() or np.isinf(C).any():
        where = np.argwhere((C < 0) | np.isinf(C))[0]
        raise PolicyError(f"cost of candidate {where[-1]} (request {where[0]}) is {C[tuple(where)]}; a cost is a "
                          "finite number of USD >= 0")
    return P, np.array(C)


def _pick(objective: np.ndarray, cost: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
    """Per row, the column with the highest objective among eligible ones; ties to the cheaper, then the first."""
    obj = objective if eligible is None else np.where(eligible, objective, -np.inf)
    top = obj.max(axis=1, keepdims=True)
    return np.argmin(np.where(obj == top, cost, np.inf), axis=1)


def _choices(policy: str, idx: np.ndarray, P: np.ndarray, C: np.ndarray, params: dict,
             models: Sequence[str] | None) -> Choices:
    rows = np.arange(len(idx))
    if models is not None and len(models) != P.shape[1]:
        raise PolicyError(f"models: {len(models)} names for {P.shape[1]} candidates")
    return Choices(policy=policy, index=idx, p=P[rows, idx], cost=C[rows, idx], candidate_p=P, candidate_cost=C,
                   params=params, models=None if models is None else list(models))


def _number(value, name: str, minimum: float | None = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise PolicyError(f"{name} must be finite, got {value!r}")
    if minimum is not None and v < minimum:
        raise PolicyError(f"{name} must be >= {minimum:g}, got {v:g}")
    return v


def max_quality(p, cost, models: Sequence[str] | None = None) -> Choices:
    """The candidate with the highest P per request (ties: the cheaper)."""
    P, C = check_inputs(p, cost)
    return _choices("max-quality", _pick(P, C), P, C, {}, models)


def tradeoff(p, cost, lam: float, models: Sequence[str] | None = None) -> Choices:
    """The candidate with the highest P − λ·cost per request; λ in probability per USD (module docstring)."""
    lam = _number(lam, "lambda (probability per USD)")
    P, C = check_inputs(p, cost)
    return _choices("tradeoff", _pick(P - lam * C, C), P, C, {"lambda": lam}, models)


def threshold(p, cost, delta: float | None = None, tau: float | None = None,
              models: Sequence[str] | None = None) -> Choices:
    """The cheapest candidate whose P ≥ best P − δ, or whose P ≥ τ (either knob or both; ties: the higher P)."""
    if delta is None and tau is None:
        raise PolicyError("threshold needs delta (a margin below the best P, e.g. 0.03) or tau (an absolute P, "
                          "e.g. 0.8), or both")
    P, C = check_inputs(p, cost)
    eligible = np.zeros(P.shape, dtype=bool)
    params = {}
    if delta is not None:
        delta = _number(delta, "delta")
        if delta > 1:
            raise PolicyError(f"delta is a difference of probabilities, at most 1; got {delta:g}")
        eligible |= P >= P.max(axis=1, keepdims=True) - delta
        params["delta"] = delta
    if tau is not None:
        tau = _number(tau, "tau")
        if tau > 1:
            raise PolicyError(f"tau is a probability, at most 1; got {tau:g}")
        eligible |= P >= tau
        params["tau"] = tau
    # tau alone can leave a request with no candidate at or above it: its best candidate is then chosen
    none = ~eligible.any(axis=1)
    eligible[none] = P[none] == P[none].max(axis=1, keepdims=True)
    cheapest = np.where(eligible, C, np.inf).min(axis=1, keepdims=True)
    idx = _pick(P, C, eligible & (C == cheapest))
    return _choices("threshold", idx, P, C, params, models)


def fit_budget(p, cost, budget: float) -> BudgetFit:
    """The smallest λ whose tradeoff choices cost at most `budget` USD per request on average on these items.

    The mean cost of the choices never rises as λ grows, so bisection (on log λ) finds it. λ = 0 when
    max-quality already fits the budget; when even the cheapest candidate per request does not, λ is the
    one that picks the cheapest and `met` is False.
    """
    budget = _number(budget, "budget (USD per request)")
    P, C = check_inputs(p, cost)
    rows = np.arange(len(P))

    def mean_cost(lam: float) -> float:
        return float(C[rows, _pick(P - lam * C, C)].mean()) if len(P) else 0.0

    def fit(lam: float, met: bool) -> BudgetFit:
        idx = _pick(P - lam * C, C)
        return BudgetFit(budget, float(lam), mean_cost(lam), float(P[rows, idx].mean()) if len(P) else float("nan"),
                         met, len(P))

    if mean_cost(0.0) <= budget:
        return fit(0.0, True)
    # a λ at which every request goes to its cheapest candidate: P differences (at most 1) lose to any
    # positive cost difference
    gaps = np.diff(np.sort(np.unique(C)))
    hi = 2.0 / gaps[gaps > 0].min() if (gaps > 0).any() else 1.0
    if mean_cost(hi) > budget:
        return fit(hi, False)
    lo = min(1.0, hi) / 1e12
    if mean_cost(lo) <= budget:
        return fit(lo, True)
    for _ in range(BISECTION_STEPS):        # invariant: mean_cost(lo) > budget >= mean_cost(hi)
        mid = float(np.sqrt(lo * hi))
        if mean_cost(mid) <= budget:
            hi = mid
        else:
            lo = mid
        if hi / lo < 1 + 1e-9:
            break
    return fit(hi, True)


def budget(p, cost, target: float, validation: tuple | None = None,
           models: Sequence[str] | None = None) -> Choices:
    """Tradeoff choices at the λ `fit_budget` finds for a mean cost of at most `target` USD per request.

    λ is fitted on `validation` = (p, cost) of validation items when given, else on these items themselves
    (it reads only P and costs, never an outcome). On other items the mean cost is near the target, not bound
    by it. `params` holds λ, the budget, and the mean cost and P on the items it was fitted on.
    """
    P, C = check_inputs(p, cost)
    if validation is not None:
        if len(validation) != 2:
            raise PolicyError("validation must be (p, cost) of validation items")
        width = np.shape(validation[0])[-1] if np.ndim(validation[0]) == 2 else None
        if width != P.shape[1]:
            raise PolicyError(f"validation probabilities have shape {np.shape(validation[0])}; expected "
                              f"(n_items, {P.shape[1]}), one column per candidate as in the requests")
    fitted = fit_budget(*(validation if validation is not None else (P, C)), target)
    out = tradeoff(P, C, fitted.lam, models)
    out.policy = "budget"
    out.params = {"budget": fitted.budget, "lambda": fitted.lam, "met": fitted.met,
                  "fitted_on": "validation items" if validation is not None else "the routed items",
                  "fitted_items": fitted.items, "fitted_mean_cost": fitted.mean_cost, "fitted_mean_p": fitted.mean_p}
    return out


def choose(p, cost, policy: str = "max-quality", *, lam: float | None = None, delta: float | None = None,
           tau: float | None = None, budget_usd: float | None = None, validation: tuple | None = None,
           models: Sequence[str] | None = None) -> Choices:
    """The choices of the policy named `policy` (one of POLICIES) with its knob; an unknown name or a missing
    knob gets a PolicyError that says what to give."""
    if policy == "max-quality":
        return max_quality(p, cost, models)
    if policy == "tradeoff":
        if lam is None:
            raise PolicyError("policy 'tradeoff' needs lam (probability per USD, >= 0)")
        return tradeoff(p, cost, lam, models)
    if policy == "threshold":
        return threshold(p, cost, delta, tau, models)
    if policy == "budget":
        if budget_usd is None:
            raise PolicyError("policy 'budget' needs budget_usd (mean USD per request, e.g. 0.0005 for $0.50 per "
                              "1,000 requests)")
        return budget(p, cost, budget_usd, validation, models)
    raise PolicyError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")


# ---- the cost model -----------------------------------------------------------------------------------------------
def expected_cost(prompt_tokens, price_in_per_mtok, price_out_per_mtok,
                  expected_output_tokens=None) -> np.ndarray:
    """Expected USD of each call: (price_in × prompt tokens + price_out × expected output tokens) / 1e6.

    Prices are USD per million tokens (a profile's or zoo's `price_per_mtok`). Prompt tokens (n,) against
    per-candidate prices (m,) (and output lengths: a number or (m,)) give (n, m); scalars give a scalar.
    `expected_output_tokens` is the candidate's expected completion length, from records that hold lengths or
    costs; None uses DEFAULT_OUTPUT_TOKENS (300).
    """
    out_tokens = DEFAULT_OUTPUT_TOKENS if expected_output_tokens is None else expected_output_tokens
    values = {"prompt tokens": prompt_tokens, "input price": price_in_per_mtok,
              "output price": price_out_per_mtok, "expected output tokens": out_tokens}
    arrays = {}
    for name, v in values.items():
        a = np.asarray(v, dtype=np.float64)
        if np.isnan(a).any() or np.isinf(a).any() or (a < 0).any():
            raise PolicyError(f"{name}: expected finite numbers >= 0, got {v!r}")
        arrays[name] = a
    tokens = np.asarray(arrays["prompt tokens"])
    if tokens.ndim == 1 and np.ndim(arrays["input price"]) == 1:
        tokens = tokens[:, None]            # (n,) prompts against (m,) candidates
    return (tokens * arrays["input price"]
            + arrays["expected output tokens"] * arrays["output price"]) / 1e6


def split_price(price) -> tuple[float, float] | None:
    """(input, output) USD per million tokens from a `price_per_mtok` note: a number (both) or {input, output};
    None when there is none."""
    if price is None:
        return None
    if isinstance(price, dict):
        try:
            return float(price["input"]), float(price["output"])
        except (KeyError, TypeError, ValueError):
            raise PolicyError(f"price_per_mtok {price!r}: expected a number or {{input: ..., output: ...}}") from None
    return float(price), float(price)


# ---- shared by the command line and the proxy ------------------------------------------------------------------
# each policy's knobs; the first of threshold's is the one named when neither is given
KNOBS = {"max-quality": (), "tradeoff": ("lambda",), "threshold": ("delta", "tau"), "budget": ("budget",)}
KNOB_MEANING = {"lambda": "probability per USD, >= 0", "delta": "a margin of probability below the best P, 0 to 1",
                "tau": "an absolute probability, 0 to 1", "budget": "mean USD per request, >= 0"}
# the usual rule of thumb for English text with GPT-style tokenizers; each model's tokenizer differs
CHARS_PER_TOKEN = 4


class KnobError(PolicyError):
    """A policy's knob that is missing, out of range, or given to a policy that does not take it; `knob` names it
    ("policy" for the policy's name), so the command line and the proxy can name their own option or header."""

    def __init__(self, knob: str, message: str):
        super().__init__(message)
        self.knob = knob


def check_knobs(policy: str, knobs: dict) -> dict[str, float]:
    """The knobs given for `policy` ({"lambda", "delta", "tau", "budget"}: a value or None), as numbers.

    A KnobError names the knob when the policy is unknown ("policy"), a knob it needs is missing, a knob belongs
    to another policy, or a value is not a finite number in its range (≥ 0; δ and τ at most 1)."""
    if policy not in KNOBS:
        raise KnobError("policy", f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    out = {}
    for knob, value in knobs.items():
        if value is None:
            continue
        if knob not in KNOB_MEANING:
            raise KnobError(knob, f"unknown knob {knob!r}; policies take {', '.join(KNOB_MEANING)}")
        if knob not in KNOBS[policy]:
            owner = next(p for p, ks in KNOBS.items() if knob in ks)
            raise KnobError(knob, f"{knob} is a knob of policy {owner}, not of {policy}")
        try:
            v = _number(value, knob)
            if knob in ("delta", "tau") and v > 1:
                raise PolicyError(f"{knob} is a probability, at most 1; got {v:g}")
        except PolicyError as exc:
            raise KnobError(knob, f"{exc}; {knob} is {KNOB_MEANING[knob]}") from None
        out[knob] = v
    needed = KNOBS[policy]
    if needed and not any(k in out for k in needed):
        raise KnobError(needed[0], f"policy {policy} needs {' or '.join(needed)} "
                                   f"({'; '.join(f'{k}: {KNOB_MEANING[k]}' for k in needed)})")
    return out


def prompt_tokens(text: str) -> int:
    """The estimated number of tokens of `text`: one per CHARS_PER_TOKEN (4) characters, at least 1. A cost
    estimate, not a tokenizer: each model's own tokenizer gives a somewhat different count."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def rank(p, cost, policy: str, *, lam: float | None = None, delta: float | None = None,
         tau: float | None = None) -> np.ndarray:
    """One request's candidates in the order `policy` would choose them: its choice, then its choice among the
    others, and so on (the proxy's fallback order when a model fails). `p` and `cost` are (m,); `policy` is
    max-quality, tradeoff or threshold (a budget ranks as tradeoff at its fitted λ). The first is always the
    policy's own choice (`choose`)."""
    P, C = check_inputs(np.asarray(p, dtype=np.float64)[None, :], np.asarray(cost, dtype=np.float64)[None, :])
    P, C = P[0], C[0]
    if policy == "max-quality":
        return np.lexsort((C, -P))                  # the last key sorts first: P down, then cost up, then position
    if policy == "tradeoff":
        if lam is None:
            raise PolicyError("policy 'tradeoff' needs lam (probability per USD, >= 0)")
        return np.lexsort((C, -(P - _number(lam, "lambda (probability per USD)") * C)))
    if policy != "threshold":
        raise PolicyError(f"rank: policy {policy!r} is not one of max-quality, tradeoff, threshold (a budget ranks "
                          "as tradeoff at its fitted lambda)")
    if delta is None and tau is None:
        raise PolicyError("threshold needs delta or tau, or both")
    p_list, c_list = P.tolist(), C.tolist()      # a few candidates: plain Python is faster than numpy here
    left, order = list(range(len(p_list))), []
    while left:      # threshold's rule (see `threshold`) among the candidates not yet ranked
        top = max(p_list[j] for j in left)
        eligible = [j for j in left if (delta is not None and p_list[j] >= top - delta)
                    or (tau is not None and p_list[j] >= tau)] or [j for j in left if p_list[j] == top]
        cheapest = min(c_list[j] for j in eligible)
        # the cheapest eligible; ties to the higher P, then the first listed
        pick = min((j for j in eligible if c_list[j] == cheapest), key=lambda j: (-p_list[j], j))
        order.append(pick)
        left.remove(pick)
    return np.array(order)


def choice_record(choices: Choices, row: int = 0, price_known: Sequence[bool] | None = None,
                  order: Sequence[int] | None = None) -> dict:
    """One request's decision as JSON-ready data: policy, params, the chosen model, its P and expected cost, and
    every candidate's (in `order`, default as listed). An expected cost is None where `price_known` is False
    (the policy counted that candidate as free)."""
    if choices.models is None:
        raise PolicyError("choice_record needs choices made with models=")
    known = [True] * len(choices.models) if price_known is None else list(price_known)

    def usd(j: int) -> float | None:
        return float(choices.candidate_cost[row, j]) if known[j] else None

    chosen = int(choices.index[row])
    cols = range(len(choices.models)) if order is None else order
    return {"policy": choices.policy, "params": dict(choices.params), "chosen": choices.models[chosen],
            "p": float(choices.candidate_p[row, chosen]), "expected_cost_usd": usd(chosen),
            "candidates": [{"model": choices.models[j], "p": float(choices.candidate_p[row, j]),
                            "expected_cost_usd": usd(j)} for j in cols]}


def gives_probabilities(router) -> bool:
    """Whether `router.predict_proba` answers (a policy other than max-quality needs it): the router holds a
    calibrator, or its score already is a probability (`scores_are_probabilities`)."""
    return getattr(router, "calibrator_", None) is not None or bool(getattr(router, "scores_are_probabilities", False))
