"""`modelsat profile`: a model's capability profile, from existing records or by running the aptitude test."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modelsat.cli.logs import LogLevel, log_level_option, set_log_level
from modelsat.errors import ModelsatError

console = Console()


def _notes(languages: Optional[str], context_length: Optional[int], price_in: Optional[float],
           price_out: Optional[float], notes_json: Optional[str]) -> dict:
    notes: dict = {}
    if notes_json:
        try:
            notes.update(json.loads(notes_json))
        except json.JSONDecodeError as exc:
            raise ModelsatError(f"--notes is not a JSON object ({exc})") from exc
    if languages:
        notes["languages"] = [x.strip() for x in languages.split(",") if x.strip()]
    if context_length:
        notes["context_length"] = context_length
    if price_in is not None or price_out is not None:
        notes["price_per_mtok"] = {"input": price_in, "output": price_out}
    return notes


def profile_cmd(
    test: Optional[Path] = typer.Option(None, "--test", help="The aptitude-test JSON (default: the shipped test, "
                                        "the one the shipped router's profiles were taken on; "
                                        "`modelsat aptitude show`)."),
    model: Optional[str] = typer.Option(None, "--model", help="The model's name (records, or sent to the endpoint)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Profile JSON to write (a folder with --all)."),
    records: Optional[Path] = typer.Option(None, "--records", help="Profile from this records file."),
    source: Optional[str] = typer.Option(None, "--source", help="Profile from this data source."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The data folder."),
    all_models: bool = typer.Option(False, "--all", help="Profile every model of the records into --out DIR."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="OpenAI-compatible base URL to run the test on."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable holding the API key."),
    hf_path: Optional[str] = typer.Option(None, "--hf-path", help="Local transformers folder ('smollm' = SmolLM2)."),
    scoring: str = typer.Option("logits", "--scoring", help="hf-path: 'logits' (option-letter logits) or 'generate'."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Requests in flight at once (endpoint)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="A short profile: only the first N items, "
                                        "interleaved over the subjects (100 = two a subject). Run again without "
                                        "it to complete the profile: answers already in are not asked again."),
    circle: bool = typer.Option(False, "--circle", help="Circle test on hard items: right under every rotation."),
    circle_rotations: int = typer.Option(4, "--circle-rotations"),
    max_tokens: int = typer.Option(5, "--max-tokens", help="Reply length bound for generated answers."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for one reply."),
    retries: int = typer.Option(4, "--retries", help="Retries on 429/5xx/timeouts, with exponential backoff."),
    backoff: float = typer.Option(0.5, "--backoff", help="First backoff in seconds (doubles each retry)."),
    threads: int = typer.Option(1, "--threads", help="torch threads for --hf-path."),
    languages: Optional[str] = typer.Option(None, "--languages", help="Expert note: languages, comma-separated."),
    context_length: Optional[int] = typer.Option(None, "--context-length", help="Expert note: context length."),
    price_in: Optional[float] = typer.Option(None, "--price-in", min=0, help="Expert note: USD per million input tokens."),
    price_out: Optional[float] = typer.Option(None, "--price-out", min=0, help="Expert note: USD per million output tokens."),
    notes_json: Optional[str] = typer.Option(None, "--notes", help="Further notes as a JSON object."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    log_level: LogLevel = log_level_option(),
    per_benchmark: bool = typer.Option(True, "--per-benchmark-fallback/--no-per-benchmark-fallback",
                                       help="With --all: a model with no MMLU item in the records (RouterBench) "
                                       "gets a per-benchmark profile (accuracy per benchmark, test_version "
                                       "'per-benchmark:...') instead of none."),
    infer_subjects: bool = typer.Option(True, "--infer-subjects/--no-infer-subjects",
                                        help="Records: give MMLU items recorded without a subject (LLMRouter) the "
                                        "nearest subject by the shipped subject map; such subjects are marked "
                                        "'inferred' in the profile."),
) -> None:
    """Make a profile: from records (--records/--source, --model or --all) or by running the test
    (--endpoint URL --model NAME, or --hf-path DIR); a rerun resumes from the journal beside --out."""
    from modelsat.aptitude.core_items import load_test
    from modelsat.aptitude.from_records import profile_all, profile_file_name, profile_from_records
    set_log_level(log_level)
    from modelsat.aptitude.shipped import shipped_test_path
    t = load_test(test or shipped_test_path())
    notes = _notes(languages, context_length, price_in, price_out, notes_json)
    if records is not None or source is not None:
        if endpoint or hf_path:
            raise ModelsatError("profile either from records (--records/--source) or by running the test "
                                "(--endpoint/--hf-path), not both")
        from modelsat.cli.aptitude import load_records
        df, label = load_records(records, source, data_dir)
        if infer_subjects:
            from modelsat.aptitude.from_records import infer_mmlu_subjects, is_mmlu_benchmark
            if "subject" not in df.columns or (df["subject"].isna() & df["benchmark"].map(is_mmlu_benchmark)).any():
                with console.status("inferring the subject of MMLU items recorded without one ..."):
                    df = infer_mmlu_subjects(df)
        if all_models:
            if out is None:
                raise ModelsatError("--all needs --out DIR (a folder for one profile per model)")
            written, skipped = profile_all(df, t, out, label=label)
            for path in written:
                from modelsat.aptitude.profile import Profile
                p = Profile.load(path)
                fb = p.provenance.get("fallback_subjects", [])
                inf = p.provenance.get("inferred_subjects", [])
                console.print(f"{p.model}: mean {p.mean_accuracy:.1%} over {len(p.subjects)} subjects, "
                              f"{sum(s.n_items for s in p.subjects.values())} items"
                              + (f" ({len(fb)} subjects by fallback" + (f", {len(inf)} of them inferred" if inf
                                                                        else "") + ")" if fb else ""))
            fallback_written = 0
            for m, why in skipped.items():
                if per_benchmark:
                    from modelsat.aptitude.from_records import profile_file_name
                    from modelsat.evaluate.harness import benchmark_profile
                    prof = benchmark_profile(df, m, label)
                    prof.save(out / profile_file_name(m))
                    fallback_written += 1
                    console.print(f"[yellow]{m}[/]: per-benchmark profile ({', '.join(prof.subjects)}) — not on "
                                  f"the aptitude test: {why}")
                else:
                    console.print(f"[yellow]not profiled[/] {m}: {why}")
            console.print(f"[green]wrote[/] {len(written)} aptitude-test profiles to {out}"
                          + (f" and {fallback_written} per-benchmark profiles" if fallback_written else "")
                          + (f"; {len(skipped)} models not profiled" if not per_benchmark and skipped else ""))
            return
        if not model:
            raise ModelsatError("--model NAME is needed (or --all)")
        prof = profile_from_records(df, model, t, label=label, notes=notes)
        path = prof.save(out or Path(profile_file_name(model)))
        console.print(f"[green]wrote[/] {path}: mean {prof.mean_accuracy:.1%} over {len(prof.subjects)} subjects"
                      + (f", fallback for {len(prof.provenance['fallback_subjects'])}"
                         if prof.provenance["fallback_subjects"] else ""))
        return
    if endpoint is None and hf_path is None:
        raise ModelsatError("say where the profile comes from: --records/--source, --endpoint or --hf-path")
    from modelsat.aptitude.runner import journal_path, take_test
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ModelsatError(f"environment variable {api_key_env} (named by --api-key-env) is not set")
    if endpoint is not None and not model:
        raise ModelsatError("--endpoint needs --model NAME (the model name the endpoint serves)")
    from modelsat.aptitude.runner import DEFAULT_LOCAL
    name = model or (Path(hf_path).name if hf_path and hf_path != DEFAULT_LOCAL else "SmolLM2-135M-Instruct")
    out = out or Path(profile_file_name(name))

    def started(total: int, done: int) -> None:
        console.print(f"{name}: {total} prompts, {done} already in {journal_path(out)}"
                      + (" (resuming)" if done else ""))
    try:
        prof = take_test(t, out, name, endpoint=endpoint, api_key=api_key,
                         hf_path=hf_path if endpoint is None else None,
                         lm=None, scoring=scoring, concurrency=concurrency, limit=limit, circle=circle,
                         circle_rotations=circle_rotations, max_tokens=max_tokens, timeout=timeout,
                         retries=retries, backoff=backoff, notes=notes, progress=not no_progress,
                         threads=threads, on_start=started)
    except KeyboardInterrupt:
        kept = max(0, len(journal_path(out).read_text().splitlines()) - 1) if journal_path(out).exists() else 0
        console.print(f"\n[yellow]interrupted[/]: {kept} answers kept in {journal_path(out)}; run the same command "
                      "again to resume (an answer kept is never asked again)", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    print_summary(prof, out, price_in, price_out)


def print_summary(prof, out: Path, price_in: Optional[float], price_out: Optional[float]) -> None:
    """The closing summary of a run: accuracy per subject, unparsed replies, tokens, cost, items per second."""
    from rich.table import Table

    from modelsat.aptitude.runner import run_summary
    s = run_summary(prof, price_in, price_out)
    table = Table(title=f"{prof.model} on aptitude test {prof.test_version}")
    for col in ("subject", "accuracy", "items"):
        table.add_column(col, justify="left" if col == "subject" else "right")
    for subject, (acc, n) in s["subjects"].items():
        table.add_row(subject, f"{acc:.0%}", str(n))
    console.print(table)
    n = sum(n for _, n in s["subjects"].values())
    acc = sum(a * n for a, n in s["subjects"].values()) / max(n, 1)
    if s["replies_reporting_usage"]:
        tokens = (f"{s['prompt_tokens']:,} prompt + {s['completion_tokens']:,} completion tokens"
                  + (f" ({s['replies_reporting_usage']} of {s['prompts']} replies reported usage)"
                     if s["replies_reporting_usage"] < s["prompts"] else ""))
    else:
        tokens = "tokens unknown (the endpoint reported no usage)"
    cost = (f"${s['cost_usd']:.4f} at ${price_in:g}/${price_out if price_out is not None else price_in:g} per "
            "million input/output tokens" if s["cost_usd"] is not None
            else "cost: give --price-in/--price-out to see it")
    speed = (f"{s['answered_this_run']} answered this run at {s['items_per_s']:.1f} items/s"
             if s["items_per_s"] else "nothing left to ask")
    console.print(f"{s['unparsed']} of {s['prompts']} replies could not be parsed (counted wrong); {tokens}; "
                  f"{cost}; {speed}", highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {out}: {prof.model} accuracy {acc:.1%} on {n} items over {len(s['subjects'])} "
                  f"subjects", highlight=False, soft_wrap=True)
    whole = prof.provenance.get("test_items")
    if whole and n < whole:
        console.print(f"a short profile ({n} of the test's {whole} items); to complete it, run the same command "
                      "without --limit: the answers already in are kept and not asked again", highlight=False,
                      soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("profile")(profile_cmd)
