"""Where modelsat finds its data folder and its cache; the one place that resolves them."""

from __future__ import annotations

import os
from pathlib import Path

from modelsat.errors import ModelsatError

PUBLIC_COPIES = """\
The data folder holds public per-item results, one subfolder per source. Public copies:
  mmlu/      GitHub HaeChan0305/MLILAB-FedLLM @ d92730e8 data/mmlu/ (official MMLU, answer as index 0-3)
  mmlu_pro/  GitHub TIGER-AI-Lab/MMLU-Pro @ f418b116 eval_results/model_outputs_*_5shots.zip
  routerdc/  GitHub shuhao02/RouterDC @ 0e63989c datasets/split2_model7, datasets/routerbench_zs (gzipped)
  routellm/  GitHub lm-sys/RouteLLM @ 0b64fdaf routellm/evals/{mmlu,gsm8k}
  llmrouter/ GitHub ulab-uiuc/LLMRouter @ 4e7a7969 data/dcrouter_preprocessed, query_data, llm_candidates
Point modelsat at it with --data-dir DIR or the MODELSAT_DATA environment variable."""


def project_root() -> Path:
    """The source checkout's root (the folder holding pyproject.toml) when installed editable."""
    return Path(__file__).resolve().parents[2]


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data folder: `explicit` (--data-dir), then $MODELSAT_DATA, then ../shared/data beside the project."""
    candidates: list[tuple[str, Path]] = []
    if explicit:
        candidates.append(("--data-dir", Path(explicit)))
    elif os.environ.get("MODELSAT_DATA"):
        candidates.append(("MODELSAT_DATA", Path(os.environ["MODELSAT_DATA"])))
    else:
        candidates.append(("default", project_root().parent / "shared" / "data"))
        candidates.append(("default", Path.cwd().parent / "shared" / "data"))
    for _, path in candidates:
        if path.is_dir():
            return path.resolve()
    origin, path = candidates[0]
    raise ModelsatError(f"No data folder at {path} (from {origin}).\n{PUBLIC_COPIES}")


def has_data_dir() -> bool:
    """True when data_dir() would succeed (tests use it to skip with a reason)."""
    try:
        data_dir()
    except ModelsatError:
        return False
    return True


def cache_dir() -> Path:
    """A writable cache for converted weights and embeddings: $MODELSAT_CACHE or ~/.cache/modelsat."""
    path = Path(os.environ.get("MODELSAT_CACHE", Path.home() / ".cache" / "modelsat"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_yaml(path: str | os.PathLike, what: str = "YAML file"):
    """The parsed content of a YAML file; a ModelsatError naming the file, and the line and column of a syntax
    error, when it cannot be read or parsed (`what` says what the file is, e.g. "zoo index")."""
    import yaml
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ModelsatError(f"{p}: cannot read the {what} ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ModelsatError(f"{p}: not valid YAML{where}" + (f" ({problem})" if problem else "")) from None
