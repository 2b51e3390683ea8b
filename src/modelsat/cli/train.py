"""`modelsat train`: train a Model-SAT preset on the training split of real records and save the router."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()


def training_records(sources: list[str], data: str | None, seed: int = 0):
    """(train records, validation records): the evaluation's own split (evaluate/splits.py, `seed`, 70/10/20
    per benchmark; sources with their own test files keep them), so the benchmark's test items are never
    trained on; test items are dropped here."""
    import pandas as pd
    from modelsat import sources as src
    from modelsat.evaluate.splits import apply_splits, assign_splits
    records = pd.concat([src.load(name, data=data) for name in sources], ignore_index=True)
    records = apply_splits(records, assign_splits(records, seed=seed))
    return (records[records["eval_split"] == "train"].drop(columns="eval_split"),
            records[records["eval_split"] == "validation"].drop(columns="eval_split"))


def profiles_for(train_records, data: str | None = None, seed: int = 0):
    """Each model's profile on an aptitude test built from MMLU-Pro training items only (loaded for the test
    when the chosen sources lack MMLU-Pro); models of other sources fall back per subject to their own MMLU
    items, or to per-benchmark accuracy, and carry per-benchmark `tasks` when the records span several."""
    from modelsat.aptitude.core_items import build_test
    from modelsat.evaluate.harness import make_profiles
    pro = train_records[train_records["benchmark"] == "mmlu_pro"]
    if pro.empty:
        pro, _ = training_records(["mmlu_pro"], data, seed)
    test = build_test(pro, seed=seed, source={"benchmark": "mmlu_pro", "records": "training split"})
    models = sorted(train_records["model"].unique())
    profiles, _method = make_profiles(train_records, models, test, "train")
    return [profiles[m] for m in models], test


def train_cmd(config: Path = typer.Option(Path("configs/cpu-default.yaml"), "--config", help="A preset YAML."),
              out: Path = typer.Option(..., "--out", help="Folder for checkpoints and the trained router."),
              resume: bool = typer.Option(False, "--resume", help="Continue a stopped run from out/checkpoint.pt."),
              source: list[str] = typer.Option(["mmlu_pro"], "--source", help="Records source(s) to train on."),
              data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Data folder (else MODELSAT_DATA)."),
              seed: int = typer.Option(0, "--seed", help="Seeds the router's draws (groups, initial weights)."),
              seeds: Optional[str] = typer.Option(
                  None, "--seeds", help="Train once per seed of this comma list (e.g. 0,1,2), each into "
                  "OUT/seed-N, and save OUT/router as their ensemble (averaged probabilities): steadier than "
                  "any one seed. Overrides --seed."),
              split_seed: int = typer.Option(
                  0, "--split-seed", help="Train on the benchmark's split of this seed (evaluate/splits.py): its "
                  "test items are never trained on, so `scripts/decompose_modelsat.py --seed N --router DIR` reads "
                  "a router trained with --split-seed N on held-out items only."),
              device: Optional[str] = typer.Option(
                  None, "--device", help="auto | cpu | cuda: overrides the preset's train.device (auto = a GPU when "
                  "torch sees one)."),
              mixed_precision: Optional[str] = typer.Option(
                  None, "--mixed-precision", help="no | bf16 | fp16 (GPU only): overrides train.mixed_precision.")
              ) -> None:
    """Train Model-SAT (capability encoder + connector + LM, plus the profile prior) and save the router.

    Runs on one GPU when torch sees one (else the CPU). For several GPUs, launch it through Hugging Face
    Accelerate, e.g. `accelerate launch --num_processes 4 -m modelsat.cli train --config configs/full.yaml --out
    DIR`: every process computes its share of each step's groups, so the run takes the same steps as on one
    device, and only the main process writes checkpoints and the router."""
    from modelsat.routers.modelsat.router import ModelSATRouter, resolve_preset
    from modelsat.routers.modelsat.train import check_device, process_state
    overrides = {k: v for k, v in (("device", device), ("mixed_precision", mixed_precision)) if v is not None}
    preset = resolve_preset(str(config), {"train": overrides} if overrides else None)
    check_device(preset.train)                               # before minutes of loading, not after
    main = process_state(preset.train).is_main_process     # joins launched processes before anything else
    say = console.print if main else (lambda *a, **k: None)
    t0 = time.time()
    train_recs, val_recs = training_records(source, data_dir, split_seed)
    say(f"records: {len(train_recs)} train / {len(val_recs)} val rows "
        f"({train_recs['item_id'].nunique()} / {val_recs['item_id'].nunique()} items) [{time.time() - t0:.0f} s]")
    profiles, test = profiles_for(train_recs, data_dir, seed)
    say(f"profiles: {len(profiles)} models on aptitude test {test.version} [{time.time() - t0:.0f} s]")
    seed_list = _seed_list(seeds) if seeds else [seed]
    members = []
    for k in seed_list:
        where = out / f"seed-{k}" if len(seed_list) > 1 else out
        if len(seed_list) > 1:
            say(f"training seed {k} ({len(members) + 1} of {len(seed_list)}) into {where}")
        router = ModelSATRouter(preset=preset.to_dict(), seed=k, verbose=main)
        # validation items are read only where the preset chooses on them (prior_task_C_grid); the
        # diagnostics below then read items those choices were made on
        router.fit(train_recs, profiles, out_dir=where, resume=resume, validation=val_recs)
        if main:
            _report_and_save(router, preset, val_recs, profiles, where, t0, split_seed, k)
        members.append(router)
    if not main:
        return
    for p in profiles:
        p.save(out / "profiles" / f"{p.model}.json")
    if len(members) > 1:
        from modelsat.routers.ensemble import EnsembleRouter
        EnsembleRouter.of(members).save(out / "router", card={"metrics": {"seeds": seed_list,
                                                                          "split_seed": split_seed}})
        console.print(f"[green]saved[/] {out / 'router'}: the ensemble of seeds {', '.join(map(str, seed_list))} "
                      f"(each also in {out}/seed-N/router)")


def _seed_list(text: str) -> list[int]:
    """The seeds of a comma list, e.g. "0,1,2" -> [0, 1, 2]; a clear error for anything else."""
    from modelsat.errors import ModelsatError
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ModelsatError(f"--seeds takes a comma list of integers such as 0,1,2; got {text!r}") from None
    if not out or len(set(out)) != len(out):
        raise ModelsatError(f"--seeds needs one or more distinct integers, got {text!r}")
    return out


def _report_and_save(router, preset, val_recs, profiles, out: Path, t0: float, split_seed: int, seed: int) -> None:
    """Prints the validation diagnostics of one trained router and saves it in `out`/router."""
    from modelsat.routers.modelsat.config import DIAGNOSTIC_ITEMS
    from modelsat.routers.modelsat.train import evaluate, format_diagnostics, training_data
    train_s = time.time() - t0
    metrics = {"train_seconds": round(train_s, 1), "split_seed": split_seed, "seed": seed}
    choices = router.fit_choices()      # what fitting chose on data (prior kappa, gate, ...)
    if choices:
        metrics["choices"] = choices
    if len(val_recs) and hasattr(router, "model_"):
        val = training_data(val_recs, profiles, router.prior, max_items=DIAGNOSTIC_ITEMS, seed=seed)
        diag = evaluate(router.model_, val)
        console.print(format_diagnostics(diag), markup=False, highlight=False)
        metrics["validation"] = diag
    router.save(out / "router", card={"metrics": metrics})
    console.print(f"[green]saved[/] {out / 'router'} (trained in {train_s / 60:.1f} min)")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
