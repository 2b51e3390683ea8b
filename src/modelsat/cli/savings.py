"""`modelsat savings LOG --zoo Z`: the predicted quality and cost of every policy on a user's own prompts,
against always sending to each single model of the zoo (modelsat.savings does the work)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from modelsat.cli.logs import LogLevel, log_level_option, set_log_level
from modelsat.errors import ModelsatError

console = Console()
HEARTBEAT_S = 30.0      # a dated line at least this often when the output is a log file, not a terminal


def _stamp() -> str:
    from modelsat.evaluate.harness import utc_now
    return utc_now()


class _Display:
    """A rich bar over the file's bytes on a terminal; in a log, a dated line every HEARTBEAT_S seconds from a
    thread of its own, so a slow chunk (a large router) never leaves the log silent."""

    def __init__(self, log):
        self.log = log
        self.bar = None
        self.started = time.perf_counter()
        self.routed = 0         # prompts scored so far (the log counts those read, a chunk ahead)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if console.is_terminal:
            self.bar = Progress(TextColumn("[bold]routing[/] {task.fields[prompts]:,} prompts, "
                                           "{task.fields[bad]:,} bad lines"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}% of the file"), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=console, transient=False)
            self.task = self.bar.add_task("routing", total=max(log.size, 1), prompts=0, bad=0)

    def say(self, message: str) -> None:
        """One step: a dated line in a log, a plain line on a terminal."""
        console.print(message if console.is_terminal else f"{_stamp()} {message}", highlight=False,
                      soft_wrap=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            log, elapsed = self.log, time.perf_counter() - self.started
            share = log.bytes_read / log.size if log.size else 1.0
            self.say(f"routed {self.routed:,} prompts, {share:.0%} of the file read ({log.bad.count:,} bad lines "
                     f"so far), {self.routed / elapsed:.1f} prompts/s")

    def __enter__(self):
        self.started = time.perf_counter()
        if self.bar is not None:
            self.bar.start()
        else:
            self._thread = threading.Thread(target=self._heartbeat, name="savings-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()

    def update(self, log) -> None:
        """After each chunk: the count of prompts routed, and the bar (a log's lines come from the heartbeat)."""
        self.routed = log.prompts
        if self.bar is not None:
            self.bar.update(self.task, completed=log.bytes_read, prompts=log.prompts, bad=log.bad.count)


def _print_table(result: dict, markdown_path: Path) -> None:
    """The table's rows; the traffic column where the console is wide enough, else a pointer to the page."""
    from modelsat.savings import share_text, table_rows
    wide = console.width >= 150
    t = Table(title=f"predicted (not measured) on {result['log']['prompts']:,} prompts", box=None,
              pad_edge=False, show_edge=False)
    columns = [("row", "left"), ("quality", "right"), ("vs best", "right"), ("USD/1k", "right"),
               ("cost", "right")] + ([("traffic", "left")] if wide else [])
    for name, justify in columns:
        t.add_column(name, justify=justify, no_wrap=name != "traffic")
    for r in table_rows(result):
        name = f"always {r['name']}" + (" *" if r.get("best_single") else "") if r["kind"] == "single" else r["name"]
        rel = "" if r["cost_vs_best_single"] is None else f"{r['cost_vs_best_single']:.2f}x"
        t.add_row(name, f"{100 * r['mean_p']:.1f}%", f"{100 * r['p_vs_best_single']:+.1f} pp",
                  f"{r['cost_per_1000_usd']:.4f}", rel, *([share_text(r["share"], 3)] if wide else []))
    console.print(t)
    console.print("* the best single model (the highest predicted quality). quality: mean P(good answer) of the "
                  "chosen model; vs best: points against the best single model; USD/1k: expected USD per 1,000 "
                  "requests; cost: against the best single model's",
                  style="dim", highlight=False, soft_wrap=True)
    if not wide:
        console.print(f"traffic per model for each row: {markdown_path}", style="dim", highlight=False,
                      soft_wrap=True)


def savings_cmd(
    log_file: Path = typer.Argument(..., metavar="LOG", help="The prompt log: .jsonl with one OpenAI chat request "
                                    "a line ({\"messages\": [...]}; the last user message is routed on, as the "
                                    "proxy does), or a plain file with one prompt a line."),
    zoo: str = typer.Option(..., "--zoo", help="The zoo: a zoo folder, a zoo YAML or a folder of profile JSONs. "
                            "Every model needs a price (USD per million tokens)."),
    router: Optional[str] = typer.Option(None, "--router", help="A router folder, or `profile-prior`. Default: "
                                         "the shipped router (calibrated P(good answer))."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for savings.json, savings.md and savings.png. "
                                       "Default: savings-<LOG name> in the current folder."),
    lambdas: Optional[list[float]] = typer.Option(None, "--lambda", help="Tradeoff λ for the table, in "
                                                  "probability per USD (repeat for several). Default: three λ "
                                                  "at which the zoo's typical price gap per request is worth "
                                                  "0.03, 0.1 and 0.3 of P."),
    deltas: Optional[list[float]] = typer.Option(None, "--delta", help="Threshold δ for the table: the cheapest "
                                                 "model within δ of the best P (repeat for several). Default: "
                                                 "0.02, 0.05, 0.1."),
    budgets: Optional[list[float]] = typer.Option(None, "--budget", help="Budget targets: mean USD per request, "
                                                  "as `route --budget` (0.0005 = $0.50 per 1,000 requests; repeat "
                                                  "for several). Default: a quarter and half of the way from the "
                                                  "cheapest model's cost to max-quality's."),
    fit_prompts: int = typer.Option(1000, "--fit-prompts", help="The first N prompts fix the default knobs and "
                                    "fit each budget's λ (they are routed and counted like the rest)."),
    output_tokens: int = typer.Option(300, "--output-tokens", help="Expected completion tokens per call, for "
                                      "its cost, or a request's max_tokens when lower (prompt tokens are "
                                      "estimated as characters / 4)."),
    fmt: str = typer.Option("auto", "--format", help="jsonl, text, or auto: jsonl when the first non-blank line "
                            "is a JSON object, else text (the whole file one way)."),
    max_line_bytes: int = typer.Option(200_000, "--max-line-bytes", help="A longer line is counted as bad "
                                       "(too long) and skipped unread."),
    show_bad: int = typer.Option(20, "--show-bad", help="List the first N bad lines by number (all are counted)."),
    chunk: int = typer.Option(256, "--chunk", help="Prompts routed at a time; memory holds one chunk."),
    log_level: LogLevel = log_level_option(),
) -> None:
    """Predicted quality and cost of every routing policy on your own prompts, against always sending to each
    model of the zoo: a table, and savings.json / savings.md / savings.png in --out.

    No answers are needed: quality is the router's calibrated P(good answer) of the chosen model, cost the
    expected USD from the zoo's prices, so both are predictions, not measurements.
    """
    from modelsat.cli.route import check_shipped_versions, load_router, load_zoo, score_meaning
    from modelsat.policies import gives_probabilities
    from modelsat.savings import PREDICTED, PromptLog, check_options, report, run_savings, write_outputs, zoo_prices
    started = time.perf_counter()
    set_log_level(log_level)
    # cheap mistakes first, before the router's seconds of loading
    check_options(lambdas=lambdas, deltas=deltas, budgets=budgets, fit_prompts=fit_prompts,
                  output_tokens=output_tokens, chunk=chunk)
    log = PromptLog(log_file, fmt, max_line_bytes, keep_bad=show_bad)
    zoo_name, candidates = load_zoo(zoo)
    prices = zoo_prices(candidates, zoo_name)
    out_dir = out or Path(f"savings-{log_file.stem}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelsatError(f"--out {out_dir}: a file, not a folder; give a folder for savings.json, savings.md "
                            "and savings.png")
    display = _Display(log)
    display.say(f"reading {log_file} ({log.size:,} bytes) as {log.format}: {log.format_reason}")
    display.say(f"loading the router; zoo {zoo_name}: {len(candidates)} models")
    r, router_label = load_router(router)
    if router is None and router_label.startswith("shipped router"):
        check_shipped_versions(candidates, zoo_name)
    meaning = score_meaning(r)
    if not gives_probabilities(r):
        raise ModelsatError(f"--router {router}: the {r.name} router gives scores, not probabilities; savings "
                            "weighs P(good answer) against cost: calibrate it "
                            "(Router.calibrate on validation items, then save it) or use the shipped router")
    r.prepare(list(candidates))
    display.say(f"routing with the {router_label} ({time.perf_counter() - started:.1f} s to start)")
    with display:
        tally, timing = run_savings(log, r, candidates, prices, output_tokens=output_tokens, chunk=chunk,
                                    fit_prompts=fit_prompts, lambdas=lambdas, deltas=deltas,
                                    budgets=budgets, on_chunk=display.update)
    timing["startup_seconds"] = time.perf_counter() - started - timing["seconds"]
    result = report(tally, log, zoo_name, candidates, prices, router_label, meaning, output_tokens, timing)
    display.say(f"routed {tally.n:,} prompts in {timing['seconds']:.1f} s: "
                f"{timing['prompts_per_second'] or 0:.1f} prompts per second; writing {out_dir}")
    paths = write_outputs(result, out_dir)
    _print_table(result, paths["markdown"])
    console.print(PREDICTED, style="dim", highlight=False, soft_wrap=True)
    if not meaning["kind"] == "probability":
        console.print(f"[yellow]P here is {meaning['text']}[/]", highlight=False, soft_wrap=True)
    bad = log.bad
    if bad.count:
        console.print(f"[yellow]{bad.count:,} bad lines[/] not routed ("
                      + ", ".join(f"{k} {v:,}" for k, v in sorted(bad.by_reason.items())) + "): "
                      + "; ".join(f"line {n}: {why}" for n, why in bad.first)
                      + ("" if bad.count <= len(bad.first) else f"; {bad.count - len(bad.first):,} more in "
                         f"{paths['json']}"), highlight=False, soft_wrap=True)
    console.print(f"{tally.n:,} prompts, {timing['prompts_per_second'] or 0:.1f} prompts per second "
                  f"(start-up {timing['startup_seconds']:.1f} s); wrote {paths['json']}, {paths['markdown']}, "
                  f"{paths['plot']}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("savings")(savings_cmd)
