"""The benchmark's report: rich tables like the paper's Tables 1–2, Markdown, and PNG plots.

Every router row shows its difference to the best single model with a paired-bootstrap 95 % CI; a loss is
printed as plainly as a win (red when the whole interval is below zero).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rich.console import Console
from rich.table import Table

MAX_COLUMNS = 9   # more benchmarks than this: only the mean column in the terminal (all of them in Markdown)


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _delta(d: dict | None, markup: bool = True) -> str:
    if not d:
        return ""
    text = f"{100 * d['estimate']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
    if not markup:
        return text
    if d["low"] > 0:
        return f"[green]{text}[/]"
    if d["high"] < 0:
        return f"[red]{text}[/]"
    return text


def _label(row: dict) -> str:
    name = row["method"]
    if row.get("seed_spread"):
        return f"{name} (mean of {row['seed_spread']['n']} seeds)"
    if row.get("kind") == "upper bound":
        return f"{name} (upper bound)"
    if row.get("kind") == "reference" and row.get("model"):
        return f"{name}: {row['model']}"
    return name


def _short(benchmark: str) -> str:
    return benchmark.split("/", 1)[-1]


def _order(rows: list[dict]) -> list[dict]:
    rank = {"reference": 0, "router": 1, "upper bound": 2}
    return sorted(rows, key=lambda r: (rank.get(r.get("kind"), 1), 0))


def zoo_table(entry: dict) -> Table:
    """One zoo: rows = references, routers, oracle; columns = benchmarks (if few), mean, Δ vs best single."""
    benches = list(entry["n_test_items_per_benchmark"])
    show = benches if 1 < len(benches) <= MAX_COLUMNS else []
    title = (f"{entry['zoo']['name']} — {len(entry['zoo']['models'])} models, {entry['n_test_items']} test items"
             f" ({entry['zoo'].get('scenario', 'in_domain')})")
    t = Table(title=title, title_justify="left", show_lines=False)
    t.add_column("method")
    for b in show:
        t.add_column(_short(b), justify="right")
    t.add_column("mean", justify="right")
    t.add_column("Δ vs best single [95 % CI]", justify="right")
    t.add_column("gap closed", justify="right")
    has_cost = any(r.get("cost_per_call") not in (None,) and not _isnan(r.get("cost_per_call")) for r in entry["rows"])
    if has_cost:
        t.add_column("$/call", justify="right")
    t.add_column("ms/instr", justify="right")
    for row in _order(entry["rows"]):
        if row.get("status", "ok") != "ok":
            t.add_row(_label(row), *[""] * len(show), f"[dim]{row['status']}[/]", f"[dim]{row.get('reason', '')[:60]}[/]",
                      "", *([""] if has_cost else []), "")
            continue
        cells = [_pct(row["per_benchmark"].get(b)) for b in show]
        gap = row.get("gap_closed")
        cost = row.get("cost_per_call")
        t.add_row(_label(row), *cells, _pct(row["mean"]), _delta(row.get("delta_vs_best_single")),
                  "" if row["method"] in ("best single", "oracle") or gap is None or _isnan(gap) else f"{100 * gap:+.1f} %",
                  *([f"{cost:.6f}" if cost is not None and not _isnan(cost) else ""] if has_cost else []),
                  f"{row['ms_per_instruction']:.2f}" if "ms_per_instruction" in row else "")
    return t


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def summary_table(entries: list[dict], title: str) -> Table | None:
    """Rows = methods, columns = zoos: each cell the mean and Δ vs best single (the paper's Table 1 layout)."""
    if len(entries) < 2:
        return None
    t = Table(title=title, title_justify="left")
    t.add_column("method")
    for e in entries:
        t.add_column(e["zoo"]["name"], justify="right")
    methods = []
    for e in entries:
        for r in _order(e["rows"]):
            if r["method"] not in methods:
                methods.append(r["method"])
    for m in methods:
        cells = []
        for e in entries:
            row = next((r for r in e["rows"] if r["method"] == m), None)
            if row is None or row.get("status", "ok") != "ok":
                cells.append("[dim]" + (row["status"] if row else "—") + "[/]")
            else:
                d = row.get("delta_vs_best_single")
                cells.append(_pct(row["mean"]) + (f"\n{_delta(d)}" if d and m != "oracle" else ""))
        t.add_row(m, *cells)
    return t


def stream_table(steps: list[dict]) -> Table | None:
    if not steps:
        return None
    t = Table(title="release stream — the newest model joins by its profile only; zoo = 5 best so far + newest",
              title_justify="left")
    t.add_column("release")
    methods = []
    for e in steps:
        for r in _order(e["rows"]):
            if r["method"] not in methods:
                methods.append(r["method"])
    for m in methods:
        t.add_column(m, justify="right")
    for e in steps:
        cells = []
        for m in methods:
            row = next((r for r in e["rows"] if r["method"] == m), None)
            if row is None or row.get("status", "ok") != "ok":
                cells.append("[dim]" + (row["status"] if row else "—") + "[/]")
            else:
                d = row.get("delta_vs_best_single")
                cells.append(_pct(row["mean"]) + (f" ({_delta(d).split(' [')[0].replace('[green]', '')})"
                                                  if d and row.get("kind") == "router" else ""))
        step = e["stream_step"]
        t.add_row(f"{step['date']} {step['newest']}", *cells)
    return t


def published_comparison(entry: dict, who: str, figs: dict) -> str:
    """One line: every routed method's mean over the benchmarks `who` published, beside theirs, and on how many
    of them it is above. A sampled test set (quick run) is not theirs: the line says so."""
    benches = [b for b in figs if b in entry["n_test_items_per_benchmark"]]
    if not benches:
        return f"{who}: none of its published benchmarks is in this zoo"
    theirs = 100 * float(np.mean([figs[b] for b in benches]))
    parts = []
    for row in _order(entry["rows"]):
        skip = row["method"] in ("random", "random (router)", "best-single")
        if skip or row.get("status", "ok") != "ok" or row.get("kind") == "upper bound":
            continue
        ours = [row["per_benchmark"].get(b) for b in benches]
        if any(v is None for v in ours):
            continue
        above = sum(round(100 * v, 2) > round(100 * figs[b], 2) for v, b in zip(ours, benches))   # as printed
        mean = 100 * float(np.mean(ours))
        parts.append((mean, f"{_label(row)} {mean:.2f} ({above} of {len(benches)} above)"))
    parts.sort(key=lambda x: -x[0])
    sampled = [b for b in benches if any(n.startswith(f"{b}: ") and "test items" in n for n in entry.get("notes", []))]
    caveat = (f"; ours on a sample of {', '.join(_short(b) for b in sampled)}'s test items, theirs on all"
              if sampled else "; both on every test item")
    return (f"Mean over {who}'s {len(benches)} published benchmarks: {who} (published) {theirs:.2f}; "
            + "; ".join(p for _, p in parts) + caveat)


# ---- cost ----------------------------------------------------------------------------------------------------
COST_DEFINITION = ("Each router's calibrated P (calibrator fitted on validation items) under the `tradeoff` policy "
                   "(a sweep of λ) and the `threshold` policy (a sweep of δ), the policies' expected cost being each "
                   "model's mean cost per call on training items; every choice is charged the item's own recorded "
                   "cost. Cost and accuracy are means over benchmarks. Hull: the non-decreasing convex hull of a "
                   "method's points under both policies and the cheapest model's point. AIQ: the hull's mean "
                   "accuracy over the cost range from the cheapest to the dearest single model (RouterBench). Cost "
                   "to reach: the hull's lowest cost that reaches the best single model's accuracy (100 %) or 95 % "
                   "of it, as % of that model's cost (— = never reached). Accuracy at x %: the hull's accuracy at "
                   "x % of the best single model's cost (— = below the method's cheapest point).")


def _cost_order(section: dict) -> list[str]:
    from modelsat.evaluate.cost import ORACLE
    methods = section["methods"]
    return sorted((m for m in methods if m != ORACLE), key=lambda m: -(methods[m]["aiq"] or 0)) + \
        ([ORACLE] if ORACLE in methods else [])


def _cost_cells(fig: dict) -> list[str]:
    by = fig.get("aiq_by_policy", {})
    return [_pct(fig["aiq"]), _pct(by.get("tradeoff")), _pct(by.get("threshold")),
            *(_pct(fig["cost_to_reach"][k]) for k in ("100", "95")),
            *(_pct(fig["quality_at"][k]) for k in ("10", "25", "50")), _pct(fig["max_quality"])]


COST_HEAD = ["method", "AIQ", "AIQ tradeoff", "AIQ threshold", "cost to reach 100 %", "cost to reach 95 %",
             "acc @10 % cost", "acc @25 % cost", "acc @50 % cost", "top acc"]


def _cost_title(entry: dict) -> str:
    c = entry["cost"]
    b, lo = c["best_single"], c["cheapest"]
    return (f"{entry['zoo']['name']} — quality at a price (% ; costs as % of {b['model']}'s "
            f"{1000 * b['cost_per_call']:.4f} milli-USD per call, accuracy {_pct(b['quality'])}; AIQ over "
            f"{1000 * lo['cost_per_call']:.4f}–{1000 * c['most_expensive_cost']:.4f} milli-USD)")


def cost_table(entry: dict) -> Table | None:
    """One priced zoo: each method's AIQ, costs to reach 100 % / 95 % of the best single model's accuracy and
    accuracy at 10 / 25 / 50 % of its cost (% of that model's cost and %; narrow enough for a log file)."""
    section = entry.get("cost")
    if not section:
        return None
    from rich import box
    t = Table(title=_cost_title(entry), title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False,
              show_edge=False)
    t.add_column("method", overflow="fold", min_width=18)
    for h in ("AIQ", "reach 100 %", "reach 95 %", "acc @10 %", "acc @25 %", "acc @50 %", "top acc"):
        t.add_column(h, justify="right", min_width=6, max_width=6)
    for m in _cost_order(section):
        cells = _cost_cells(section["methods"][m])
        t.add_row(m, cells[0], *cells[3:])      # each policy's own AIQ: in results.md and results.json
    return t


def _diff(d: dict | None, scale: float = 100.0, markup: bool = False, lower_is_better: bool = False) -> str:
    if not d or d.get("estimate") is None or _isnan(d["estimate"]):
        return "—"
    if d.get("low") is None or _isnan(d["low"]):
        return f"{scale * d['estimate']:+.2f} [no CI]"
    text = f"{scale * d['estimate']:+.2f} [{scale * d['low']:+.2f}, {scale * d['high']:+.2f}]"
    if not markup:
        return text
    good, bad = (d["high"] < 0, d["low"] > 0) if lower_is_better else (d["low"] > 0, d["high"] < 0)
    return f"[green]{text}[/]" if good else f"[red]{text}[/]" if bad else text


def cost_difference_lines(entry: dict, markup: bool = False) -> list[str]:
    """Each Model-SAT row against every other method: Δ AIQ (points) and Δ cost to reach 100 % / 95 % of the best
    single model's accuracy (points of its cost), with paired-bootstrap 95 % CIs."""
    lines = []
    for subject, others in (entry.get("cost") or {}).get("differences", {}).items():
        for other, d in others.items():
            lines.append(f"{subject} − {other}: AIQ {_diff(d.get('aiq'), markup=markup)}; cost to reach 100 % "
                         f"{_diff(d.get('cost_to_reach_100'), markup=markup, lower_is_better=True)}; 95 % "
                         f"{_diff(d.get('cost_to_reach_95'), markup=markup, lower_is_better=True)}")
    return lines


def _routellm_cost_rows(entry: dict) -> list[list[str]]:
    section = entry.get("cost") or {}
    rows = []
    for m, by_bench in (section.get("routellm") or {}).items():
        for b, f in by_bench.items():
            reach = section["per_benchmark"][b]["methods"][m]["cost_to_reach"]["95"]
            rows.append([m, _short(b), f"{f['apgr']:.3f}", _diff(f["apgr_vs_random"], 1.0),
                         _pct(f["cpt50"]), _pct(f["cpt80"]), _diff(f["cpt80_vs_random"]), _pct(f["cpt95"]),
                         _pct(1 - reach) if reach is not None and not _isnan(reach) else "—"])
    return rows


ROUTELLM_COST_HEAD = ["router", "benchmark", "APGR", "APGR − random [95 % CI]", "CPT(50 %)", "CPT(80 %)",
                      "CPT(80 %) − random's 80 % [95 % CI]", "CPT(95 %)", "cost cut at 95 % of strong's accuracy"]


def routellm_cost_table(entry: dict) -> Table | None:
    """On a strong/weak pair: APGR and CPT from calibrated P, with CIs against the random mix, and the cost cut at
    95 % of the strong model's accuracy."""
    rows = _routellm_cost_rows(entry)
    if not rows:
        return None
    from rich import box
    t = Table(title=f"{entry['zoo']['name']} — RouteLLM figures on calibrated P (CPT in % of calls to the strong "
                    f"model; cost cut at 95 % of its accuracy, in % of its cost; APGR − random's in results.md)",
              title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, show_edge=False)
    t.add_column("router", overflow="fold", min_width=14, max_width=14)
    t.add_column("bench", max_width=5, overflow="fold")
    for h in ("APGR", "CPT(50 %)", "CPT(80 %)", "CPT(80 %) − 80 [95 % CI]", "CPT(95 %)", "cost cut"):
        t.add_column(h, justify="right", min_width=6 if "CI" not in h else 14, max_width=6 if "CI" not in h else 14)
    for r in rows:
        t.add_row(*r[:3], *r[4:])
    return t


def cost_free_zoos(results: dict) -> list[str]:
    """Zoos with no cost section: their records price no item (or not every one), and no price table with a
    source was given."""
    return [e["zoo"]["name"] for e in results["zoos"] if not e.get("cost")]


def print_report(results: dict, console: Console) -> None:
    pro = [e for e in results["zoos"] if e["family"] == "mmlu_pro"]
    s = summary_table(pro, "MMLU-Pro zoos — mean accuracy (%) and Δ vs best single [95 % CI]")
    if s is not None:
        console.print(s)
    for e in results["zoos"]:
        console.print(zoo_table(e))
        for note in e.get("notes", []):
            console.print(f"  [dim]note: {note}[/]")
        if e.get("published"):
            for who, figs in e["published"].items():
                console.print(f"  [dim]published {who}: " + ", ".join(f"{_short(b)} {100 * v:.2f}" for b, v in figs.items())
                              + " (their run; ours above is measured on the same test files)[/]")
                console.print(f"  [dim]{published_comparison(e, who, figs)}[/]")
        for line in head_to_head_lines(e.get("head_to_head") or {}, bold=""):
            console.print(f"  {line}", markup=False)
        ct = cost_table(e)
        if ct is not None:
            console.print(ct)
            for line in cost_difference_lines(e, markup=True):
                console.print(f"  {line}", highlight=False)
            for name, why in e["cost"].get("without_curve", {}).items():
                console.print(f"  [dim]no cost curve for {name}: {why[:160]}[/]", highlight=False)
            rc = routellm_cost_table(e)
            if rc is not None:
                console.print(rc)
    free = cost_free_zoos(results)
    if free and len(free) < len(results["zoos"]):
        console.print(f"[dim]no cost section (cost-free: the records price no item and no price table with a "
                      f"source is given): {', '.join(free)}[/]")
    st = stream_table(results.get("streams", []))
    if st is not None:
        console.print(st)
    for fam, info in results["families"].items():
        for name, status in info["fit"].items():
            if status.get("status") != "ok":
                console.print(f"[yellow]{fam}: {name} {status['status']}: {status.get('reason', '')}[/]")
    console.print(f"run took {results['run'].get('seconds', 0):.0f} s")


# ---- Markdown -------------------------------------------------------------------------------------------------
MAX_CHOICE_ENTRIES = 8   # a nested choice with more entries (a grid's losses) is only counted in the Markdown


def _choices_text(choices: dict, prefix: str = "") -> str:
    """A router's fit choices as `key=value` pairs, nested keys dotted, floats to 4 significant digits; a nested
    dict of more than MAX_CHOICE_ENTRIES entries is named with its size (results.json keeps it whole)."""
    parts = []
    for key, value in choices.items():
        if value is None:
            continue
        if isinstance(value, dict) and len(value) > MAX_CHOICE_ENTRIES:
            parts.append(f"{prefix}{key}=({len(value)} values in results.json)")
        elif isinstance(value, dict):
            inner = _choices_text(value, f"{prefix}{key}.")
            parts += [inner] if inner else []
        elif isinstance(value, float):
            parts.append(f"{prefix}{key}={value:.4g}")
        else:
            parts.append(f"{prefix}{key}={value}")
    return ", ".join(parts)


def _md_zoo(entry: dict) -> list[str]:
    benches = list(entry["n_test_items_per_benchmark"])
    show = benches if len(benches) > 1 else []
    lines = [f"### {entry['zoo']['name']}", "",
             f"{len(entry['zoo']['models'])} models ({', '.join(entry['zoo']['models'])}); "
             f"{entry['n_test_items']} test items; scenario {entry['zoo'].get('scenario', 'in_domain')}; "
             f"best single (chosen on training items): {entry['best_single_model']}.", ""]
    head = ["method", *[_short(b) for b in show], "mean", "Δ vs best single [95 % CI]", "gap closed", "$/call",
            "ms/instr", "status"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in _order(entry["rows"]):
        if row.get("status", "ok") != "ok":
            lines.append("| " + " | ".join([_label(row), *[""] * len(show), "", "", "", "", "",
                                            f"{row['status']}: {row.get('reason', '')}".replace("|", "/")]) + " |")
            continue
        gap = row.get("gap_closed")
        cost = row.get("cost_per_call")
        lines.append("| " + " | ".join([
            _label(row), *[_pct(row["per_benchmark"].get(b)) for b in show], _pct(row["mean"]),
            _delta(row.get("delta_vs_best_single"), markup=False),
            "" if row["method"] in ("best single", "oracle") or gap is None or _isnan(gap) else f"{100 * gap:+.1f} %",
            f"{cost:.6f}" if cost is not None and not _isnan(cost) else "",
            f"{row['ms_per_instruction']:.2f}" if "ms_per_instruction" in row else "", "ok"]) + " |")
    for note in entry.get("notes", []):
        lines.append(f"\nNote: {note}")
    for line in seed_lines(entry):
        lines.append(f"\n{line}")
    for line in head_to_head_lines(entry.get("head_to_head") or {}):
        lines.append(f"\n{line}")
    for who, figs in (entry.get("published") or {}).items():
        lines.append(f"\nPublished {who} (their run): " + ", ".join(f"{_short(b)} {100 * v:.2f}" for b, v in figs.items()))
        lines.append("\n" + published_comparison(entry, who, figs))
    return lines + _md_cost(entry) + _md_reliability(entry) + [""]


def _md_cost(entry: dict) -> list[str]:
    """The zoo's cost table, Model-SAT's differences with their CIs and, on a pair, RouteLLM's figures."""
    section = entry.get("cost")
    if not section:
        return []
    lines = ["", f"#### {_cost_title(entry)}", "", "| " + " | ".join(COST_HEAD) + " |", "|---" * len(COST_HEAD) + "|"]
    for m in _cost_order(section):
        lines.append(f"| {m} | " + " | ".join(_cost_cells(section["methods"][m])) + " |")
    diffs = cost_difference_lines(entry)
    if diffs:
        lines += ["", "Differences (paired bootstrap over test items within each benchmark, "
                  f"{section.get('bootstrap_resamples', '')} resamples; AIQ in points of accuracy, cost to reach in "
                  "points of the best single model's cost):", ""] + [f"- {d}" for d in diffs]
    for name, why in section.get("without_curve", {}).items():
        lines += ["", f"No cost curve for {name}: {why}".replace("|", "/")]
    rows = _routellm_cost_rows(entry)
    if rows:
        lines += ["", "| " + " | ".join(ROUTELLM_COST_HEAD) + " |", "|---" * len(ROUTELLM_COST_HEAD) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


RELIABILITY_HEAD = ["method", "ECE before", "Brier before", "ECE after", "Brier after", "pairs"]


def _num(x, digits: int = 4) -> str:
    return "n/a" if x is None or _isnan(x) else f"{x:.{digits}f}"


def reliability_rows(entry: dict) -> list[list[str]]:
    """One row per method of the zoo's reliability section: ECE and Brier score before calibration (n/a where
    the raw score is not a probability) and after, and the number of test (model, item) pairs."""
    rel = (entry.get("cost") or {}).get("reliability") or {}
    rows = []
    for m, r in rel.get("routers", {}).items():
        before, after = r.get("before") or {}, r["after"]
        rows.append([m, _num(before.get("ece")), _num(before.get("brier")), _num(after["ece"]),
                     _num(after["brier"]), str(after["pairs"])])
    return rows


def _md_reliability(entry: dict) -> list[str]:
    """The zoo's reliability table: each method's ECE and Brier score on the test pairs, before and after
    calibration."""
    rows = reliability_rows(entry)
    if not rows:
        return []
    bins = entry["cost"]["reliability"]["bins"]
    return ["", f"#### {entry['zoo']['name']} — reliability of P (ECE over {bins} equal-width bins, Brier score)",
            "", f"Validation items fit each calibrator ({entry['cost'].get('validation_items', 'the')} items); the "
            "test (model, item) pairs score it. Before = the raw score where it already is a probability (n/a "
            f"otherwise). Diagram: plots/reliability_{entry['zoo']['name']}.png.", "",
            "| " + " | ".join(RELIABILITY_HEAD) + " |", "|---" * len(RELIABILITY_HEAD) + "|"] + \
        ["| " + " | ".join(r) + " |" for r in rows] + \
        ["", "Before is n/a for " + "; ".join(f"{m} ({r['before_reason']})" for m, r in why.items()) + "."
         if (why := {m: r for m, r in entry["cost"]["reliability"]["routers"].items() if r.get("before_reason")})
         else ""]


def _md_summary(entries: list[dict], title: str) -> list[str]:
    """Methods × zoos: mean accuracy (%) and Δ vs best single with its 95 % CI (the paper's Table 1 layout)."""
    if not entries:
        return []
    methods: list[str] = []
    for e in entries:
        for r in _order(e["rows"]):
            if r["method"] not in methods:
                methods.append(r["method"])
    avg = len(entries) > 1
    lines = [f"### {title}", "", "| method | " + " | ".join(e["zoo"]["name"] for e in entries)
             + (" | average of the zoos (mean Δ) |" if avg else " |"), "|---|" + "---|" * (len(entries) + avg)]
    for m in methods:
        cells, means, deltas = [], [], []
        for e in entries:
            row = next((r for r in e["rows"] if r["method"] == m), None)
            if row is None:
                cells.append("")
            elif row.get("status", "ok") != "ok":
                cells.append(row["status"].split(" (")[0] + " (see the zoo's table)")
            else:
                d = row.get("delta_vs_best_single")
                show = d and m not in ("best single", "oracle") and row.get("kind") != "upper bound"
                cells.append(_pct(row["mean"]) + (f" ({_delta(d, markup=False)})" if show else ""))
                means.append(row["mean"])
                deltas.append(d["estimate"] if show else None)
        if avg:
            whole = len(means) == len(entries) and all(x is not None and not _isnan(x) for x in means)
            cells.append("" if not whole else _pct(sum(means) / len(means)) + (
                f" ({100 * sum(deltas) / len(deltas):+.2f})" if all(x is not None for x in deltas) else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines + [""]


def seed_lines(entry: dict) -> list[str]:
    """For each router trained over several seeds: each seed's mean (Δ vs best single) and their spread."""
    lines = []
    for row in entry["rows"]:
        spread = row.get("seed_spread")
        if not spread or row.get("status", "ok") != "ok":
            continue
        each = ", ".join(f"seed {s['seed']} {_pct(s['mean'])} ({100 * s['delta']:+.2f})" for s in row["seeds"])
        lines.append(f"{row['method']} over {spread['n']} training seeds: {each}; sd {100 * spread['sd']:.2f}, "
                     f"range {_pct(spread['min'])}–{_pct(spread['max'])}")
    return lines


def _md_seeds(entries: list[dict]) -> list[str]:
    """Methods trained over seeds × zoos: mean, sd and range over the seeds (the spread a figure carries)."""
    rows = {}
    for e in entries:
        for r in e["rows"]:
            if r.get("seed_spread") and r.get("status", "ok") == "ok":
                rows.setdefault(r["method"], {})[e["zoo"]["name"]] = r
    if not rows:
        return []
    names = [e["zoo"]["name"] for e in entries]
    lines = ["### Spread over training seeds", "",
             "Mean over seeds (sd; each seed's mean). A figure is quoted with this spread.", "",
             "| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m, by in rows.items():
        cells = []
        for n in names:
            r = by.get(n)
            cells.append("" if r is None else f"{_pct(r['mean'])} (sd {100 * r['seed_spread']['sd']:.2f}; "
                         + " / ".join(_pct(x["mean"]) for x in r["seeds"]) + ")")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines + [""]


def head_to_head_lines(duel: dict, over: str = "", bold: str = "**") -> list[str]:
    """Each Model-SAT row against the cheap routers: Δ in points with its paired 95 % CI, one line per row."""
    lines = []
    for subject, others in duel.items():
        parts = [f"− {o} {_delta(d, markup=False)}" for o, d in others.items()]
        lines.append(f"Head to head{over} (paired 95 % CI, points): {bold}{subject}{bold} " + "; ".join(parts))
    return lines


def markdown(results: dict) -> str:
    run = results["run"]
    lines = ["# modelsat benchmark", "",
             f"Started {run['started']}, seed {run['seed']}, {'quick' if run['quick'] else 'full'} run, "
             f"{run.get('seconds', 0):.0f} s. Differences to the best single model are paired-bootstrap 95 % CIs "
             f"({run['bootstrap_resamples']} resamples of test items, within each benchmark); 'mean' is the mean "
             "over benchmarks. The best single and per-benchmark/category best are chosen on training items. "
             "Oracle is an upper bound, not a router.", ""]
    cap = run.get("max_test_items_per_benchmark")
    if cap:
        lines += [f"At most {cap} test items per benchmark (seeded sample).", ""]
    elif run["quick"]:
        lines += ["Quick presets, every test item.", ""]
    pro = [e for e in results["zoos"] if e["family"] == "mmlu_pro"]
    rest = [e for e in results["zoos"] if e["family"] != "mmlu_pro"]
    summary = (_md_summary(pro, "MMLU-Pro zoos: mean accuracy (%) (Δ vs best single [95 % CI])")
               + _md_summary(rest, "Other zoos: mean over benchmarks (%) (Δ vs best single [95 % CI])"))
    seeds_md = _md_seeds(results["zoos"] + results.get("streams", []))
    if run.get("train_seeds", 1) > 1:
        lines += [f"Routers trained by gradient ran over {run['train_seeds']} training seeds (seed, seed + 1, ...); "
                  "their rows are the mean over seeds, and their intervals resample seeds as well as items.", ""]
    if summary:
        lines += ["## Summary", ""] + summary + seeds_md
    for fam, info in results["families"].items():
        for joint in info.get("head_to_head", []):
            lines += head_to_head_lines(joint["deltas"], f" on the mean of {fam}'s {len(joint['zoos'])} "
                                        f"{'release-stream steps' if '@' in joint['zoos'][0] else 'zoos'}") + [""]
    lines += ["## Families", ""]
    for fam, info in results["families"].items():
        lines.append(f"- **{fam}**: {len(info['models'])} models ({len(info['train_models'])} train routers), "
                     f"items per split {info['split_counts']}, profiles: {info['profile_method']}; "
                     f"splits in `{Path(info['splits_file']).name}`. " + " ".join(info.get("notes", [])))
        for name, st in info["fit"].items():
            if st.get("status") != "ok":
                lines.append(f"  - {name}: {st['status']}: {st.get('reason', '')}")
            else:
                chose = f"; chose {_choices_text(st['choices'])}" if st.get("choices") else ""
                lines.append(f"  - {name}: fitted in {st.get('fit_seconds', 0):.1f} s{chose}")
    priced = [e for e in results["zoos"] if e.get("cost")]
    if priced:
        lines += ["## Quality at a price", "", COST_DEFINITION, "",
                  "Priced zoos: " + ", ".join(e["zoo"]["name"] for e in priced) + "; cost-free (no per-item cost in "
                  "the records and no price table with a source): " + (", ".join(cost_free_zoos(results)) or "none")
                  + ". Each zoo's cost table is in its section below.", ""]
    lines += ["", "## Zoos", ""]
    for e in results["zoos"]:
        lines += _md_zoo(e)
    if results.get("streams"):
        lines += ["## Release stream", ""]
        for e in results["streams"]:
            lines += _md_zoo(e)
    return "\n".join(lines) + "\n"


# ---- plots --------------------------------------------------------------------------------------------------
MARKERS = "osD^v<>pPX*hH"


def method_styles(methods: list[str]) -> dict[str, dict]:
    """A distinct (colour, marker) for each method, the same in every plot of a run: colours from tab20 (20 of
    them), markers cycling on a different period, so no two of up to 20 methods share both."""
    import matplotlib
    cmap = matplotlib.colormaps["tab20"]
    return {m: {"color": cmap(i % 20), "marker": MARKERS[i % len(MARKERS)]} for i, m in enumerate(methods)}


def _all_methods(results: dict) -> list[str]:
    names: list[str] = []
    for e in results["zoos"] + results.get("streams", []):
        for r in e["rows"]:
            if r["method"] not in names:
                names.append(r["method"])
        for m in (e.get("cost") or {}).get("methods", {}):
            if m not in names:
                names.append(m)
    return names


def plots(results: dict, out_dir: Path) -> list[Path]:
    """Per-zoo bars with oracle and best-single lines; each priced zoo's cost curves and hulls; the release stream."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    styles = method_styles(_all_methods(results))
    for e in results["zoos"]:
        rows = [r for r in _order(e["rows"]) if r.get("status", "ok") == "ok" and r["method"] != "oracle"]
        by = {r["method"]: r for r in e["rows"] if r.get("status", "ok") == "ok"}
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4))
        vals = [100 * r["mean"] for r in rows]
        colors = ["#999999" if r["kind"] == "reference" else "#3366cc" for r in rows]
        ax.bar(range(len(rows)), vals, color=colors)
        if "delta_vs_best_single" in (rows[0] if rows else {}):
            pass
        for i, r in enumerate(rows):
            d = r.get("delta_vs_best_single")
            if d and r["kind"] != "reference":
                base = 100 * by["best single"]["mean"]
                ax.errorbar(i, base + 100 * d["estimate"], yerr=[[100 * (d["estimate"] - d["low"])],
                                                               [100 * (d["high"] - d["estimate"])]],
                            color="black", capsize=3)
        ax.axhline(100 * by["oracle"]["mean"], color="green", linestyle="--", label="oracle (upper bound)")
        ax.axhline(100 * by["best single"]["mean"], color="red", linestyle="--", label="best single")
        ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=40, ha="right")
        lo = min(vals + [100 * by["best single"]["mean"]]) if vals else 0
        ax.set_ylim(max(0, lo - 10), 100 * by["oracle"]["mean"] + 3)
        ax.set_ylabel("mean score (%)")
        ax.set_title(f"{e['zoo']['name']} ({e['n_test_items']} test items)")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        p = out_dir / f"zoo_{e['zoo']['name']}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
        if e.get("cost"):
            written.append(cost_plot(e, styles, out_dir))
            if e["cost"].get("reliability", {}).get("routers"):
                written.append(reliability_plot(e, styles, out_dir))
    steps = results.get("streams", [])
    if steps:
        fig, ax = plt.subplots(figsize=(10.5, 4.5))
        labels = [s["stream_step"]["newest"] for s in steps]
        methods = []
        for s in steps:
            for r in s["rows"]:
                if r["method"] not in methods and r.get("status", "ok") == "ok":
                    methods.append(r["method"])
        for m in methods:
            ys = []
            for s in steps:
                row = next((r for r in s["rows"] if r["method"] == m and r.get("status", "ok") == "ok"), None)
                ys.append(100 * row["mean"] if row else float("nan"))
            style = "--" if m in ("oracle", "best single", "random") else "-"
            ax.plot(range(len(steps)), ys, style, label=m, color=styles[m]["color"], marker=styles[m]["marker"],
                    markersize=4)
        ax.set_xticks(range(len(steps)), labels, rotation=40, ha="right", fontsize=7)
        ax.set_ylabel("mean score (%)")
        ax.set_title("release stream: each newest model joins by its profile only")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.tight_layout()
        p = out_dir / "release_stream.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


def cost_plot(entry: dict, styles: dict[str, dict], out_dir: Path) -> Path:
    """Two panels for one priced zoo: every method's operating points under tradeoff (solid) and threshold
    (dotted), and every method's hull; the single models as black dots; legend outside."""
    import matplotlib.pyplot as plt
    section = entry["cost"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    order = _cost_order(section)
    for m in order:
        fig_m, st = section["methods"][m], styles[m]
        for policy, pts in fig_m["points"].items():
            xs, ys = np.asarray(pts["cost"]) * 1000, 100 * np.asarray(pts["quality"])
            k = np.argsort(xs, kind="stable")
            axes[0].plot(xs[k], ys[k], ":" if policy == "threshold" else "-", color=st["color"], marker=st["marker"],
                         markersize=3, linewidth=1, markerfacecolor="none" if policy == "threshold" else st["color"])
        h = fig_m["hull"]
        axes[1].plot(1000 * np.asarray(h["cost"]), 100 * np.asarray(h["quality"]), "-", color=st["color"],
                     marker=st["marker"], markersize=4, label=f"{m} (AIQ {_pct(fig_m['aiq'])})")
    for ax in axes:
        for name, sm in section["single_models"].items():
            ax.scatter(1000 * sm["cost_per_call"], 100 * sm["quality"], color="black", s=12, zorder=3)
            ax.annotate(name.split("/")[-1], (1000 * sm["cost_per_call"], 100 * sm["quality"]), fontsize=6)
        ax.axhline(100 * section["best_single"]["quality"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per call (milli-USD, log scale)")
    axes[0].set_ylabel("mean accuracy over benchmarks (%)")
    axes[0].set_title("operating points: tradeoff λ (solid), threshold δ (dotted)", fontsize=9)
    axes[1].set_title("non-decreasing convex hull", fontsize=9)
    fig.suptitle(f"quality at a price: {entry['zoo']['name']} ({entry['n_test_items']} test items)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    p = out_dir / f"cost_{entry['zoo']['name']}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def reliability_plot(entry: dict, styles: dict[str, dict], out_dir: Path) -> Path:
    """Reliability diagrams of one priced zoo: per equal-width bin, each method's mean predicted P against the
    observed rate of good answers on the test pairs, before calibration (methods whose raw score is a
    probability) and after; the diagonal is perfect calibration; legend outside."""
    import matplotlib.pyplot as plt
    rel = entry["cost"]["reliability"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, when in zip(axes, ("before", "after")):
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
        for m, r in rel["routers"].items():
            figs, st = r.get(when), styles.get(m) or method_styles([m])[m]
            if not figs:
                continue
            c = figs["curve"]
            full = [i for i, n in enumerate(c["counts"]) if n]
            before = (r.get("before") or {}).get("ece")
            label = f"{m} (ECE {_num(before, 3)} → {figs['ece']:.3f})" if when == "after" else None
            ax.plot([c["predicted"][i] for i in full], [c["observed"][i] for i in full], "-", color=st["color"],
                    marker=st["marker"], markersize=4, linewidth=1, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted P in the bin")
        ax.set_title("before calibration (raw score, where a probability)" if when == "before"
                     else "after calibration (fit on validation items)", fontsize=9)
    axes[0].set_ylabel("observed rate of good answers")
    fig.suptitle(f"reliability: {entry['zoo']['name']} (test (model, item) pairs, {rel['bins']} equal-width bins)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0,
                   title="ECE before → after", title_fontsize=7)
    fig.tight_layout()
    p = out_dir / f"reliability_{entry['zoo']['name']}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def write_report(results: dict, out_dir: Path) -> list[Path]:
    """results.md and the plots in `out_dir`."""
    out_dir = Path(out_dir)
    md = out_dir / "results.md"
    tmp = md.with_name(".results.md.tmp")
    tmp.write_text(markdown(results))
    tmp.replace(md)
    return [md, *plots(results, out_dir)]
