"""Zoos: named sets of candidate models on one data family, read from YAML (design.md, "Contracts").

A zoo file:

    name: smaller-scale            # unique
    family: mmlu_pro               # zoos of one family share one split and one fit of every router
    source: mmlu_pro               # the records source (`modelsat.sources.load`) when run by `benchmark`
    benchmarks: [mmlu_pro]         # which benchmarks of the source (shell patterns allowed); default: all
    group_by: category             # per-group best reference: by `benchmark` (default) or `category`
    scenario: in_domain            # in_domain (default), out_of_domain or release_stream
    models: [a, b, ...]            # names as the records spell them; or entries {name, url, api_key_env,
                                   #   profile, price_per_mtok} for serving; `all` = every model of the family
    strong: a                      # optional: a strong/weak pair gets RouteLLM's APGR and CPT
    weak: b
    published: {Router: {benchmark: accuracy}}   # optional published figures shown beside ours
    cutoff: "2024-04-01"           # release_stream only: routers fit on models released before it
    keep_best: 5                   # release_stream only

The built-in zoos ship in `modelsat/zoos/*.yaml`.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from modelsat.errors import ModelsatError

SCENARIOS = ("in_domain", "out_of_domain", "release_stream")


@dataclass
class ZooModel:
    name: str
    url: str | None = None
    api_key_env: str | None = None     # the *name* of the environment variable, never the key
    profile: str | None = None
    price_per_mtok: float | dict | None = None


@dataclass
class Zoo:
    name: str
    family: str
    models: list[ZooModel]
    source: str | None = None
    benchmarks: list[str] | None = None
    group_by: str = "benchmark"
    scenario: str = "in_domain"
    strong: str | None = None
    weak: str | None = None
    published: dict = field(default_factory=dict)
    cutoff: str | None = None
    keep_best: int = 5
    all_models: bool = False           # `models: all`: every model of the family
    path: str | None = None

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def selects_benchmark(self, benchmark: str) -> bool:
        """True when `benchmark` belongs to the zoo (every benchmark when none are listed)."""
        return self.benchmarks is None or any(fnmatch.fnmatchcase(benchmark, p) for p in self.benchmarks)

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "source": self.source, "scenario": self.scenario,
                "benchmarks": self.benchmarks, "group_by": self.group_by, "models": self.model_names,
                "strong": self.strong, "weak": self.weak, "path": self.path}


def _model(entry, where: str) -> ZooModel:
    if isinstance(entry, str):
        return ZooModel(entry)
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        known = {"name", "url", "api_key_env", "profile", "price_per_mtok"}
        extra = set(entry) - known
        if extra:
            raise ModelsatError(f"{where}: unknown key(s) {', '.join(sorted(extra))} in model entry "
                                f"{entry['name']!r}; allowed: {', '.join(sorted(known))}")
        return ZooModel(**entry)
    raise ModelsatError(f"{where}: a model entry must be a name or a mapping with 'name', found {entry!r}")


def zoo_from_dict(data: dict, where: str = "<zoo>") -> Zoo:
    """A Zoo from parsed YAML; errors name the file and the field."""
    if not isinstance(data, dict):
        raise ModelsatError(f"{where}: a zoo file must be a mapping with keys name, family, models")
    for key in ("name", "models"):
        if key not in data:
            raise ModelsatError(f"{where}: missing key '{key}'")
    known = {"name", "family", "source", "benchmarks", "group_by", "scenario", "models", "strong", "weak",
             "published", "cutoff", "keep_best"}
    extra = set(data) - known
    if extra:
        raise ModelsatError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; allowed: {', '.join(sorted(known))}")
    scenario = data.get("scenario", "in_domain")
    if scenario not in SCENARIOS:
        raise ModelsatError(f"{where}: scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    raw = data["models"]
    all_models = raw == "all"
    if not all_models and (not isinstance(raw, list) or not raw):
        raise ModelsatError(f"{where}: 'models' must be a non-empty list (or 'all'), found {raw!r}")
    models = [] if all_models else [_model(e, where) for e in raw]
    names = [m.name for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ModelsatError(f"{where}: model(s) listed twice: {', '.join(dup)}")
    for key in ("strong", "weak"):
        if data.get(key) is not None and data[key] not in names:
            raise ModelsatError(f"{where}: '{key}' model {data[key]!r} is not among the zoo's models")
    benchmarks = data.get("benchmarks")
    if isinstance(benchmarks, str):
        benchmarks = [benchmarks]
    group_by = data.get("group_by", "benchmark")
    if group_by not in ("benchmark", "category", "subject"):
        raise ModelsatError(f"{where}: group_by must be benchmark, category or subject, found {group_by!r}")
    return Zoo(name=str(data["name"]), family=str(data.get("family") or data.get("source") or data["name"]),
               models=models, source=data.get("source"), benchmarks=benchmarks, group_by=group_by,
               scenario=scenario, strong=data.get("strong"), weak=data.get("weak"),
               published=dict(data.get("published") or {}), cutoff=str(data["cutoff"]) if data.get("cutoff") else None,
               keep_best=int(data.get("keep_best", 5)), all_models=all_models, path=where)


def load_zoo(path: str | os.PathLike) -> Zoo:
    """The zoo in a YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ModelsatError(f"{p}: cannot read zoo file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ModelsatError(f"{p}: not valid YAML ({exc})") from exc
    return zoo_from_dict(data, where=str(p))


def adhoc_zoo(models: list[str], name: str = "adhoc", family: str = "adhoc") -> Zoo:
    """A zoo from a list of model names (`--models a,b,c`)."""
    if not models:
        raise ModelsatError("--models needs at least one model name")
    return zoo_from_dict({"name": name, "family": family, "models": models}, where="--models")


def builtin_zoos() -> dict[str, Zoo]:
    """Every zoo shipped in the package, by name, in file-name order."""
    folder = resources.files("modelsat").joinpath("zoos")
    zoos: dict[str, Zoo] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            zoo = zoo_from_dict(yaml.safe_load(entry.read_text()), where=f"modelsat/zoos/{entry.name}")
            if zoo.name in zoos:
                raise ModelsatError(f"two built-in zoos are named {zoo.name!r}")
            zoos[zoo.name] = zoo
    return zoos


def resolve_zoos(selection: str | None) -> list[Zoo]:
    """Built-in zoos named in a comma list (or paths to YAML files); all built-in zoos when None."""
    zoos = builtin_zoos()
    if not selection:
        return list(zoos.values())
    chosen = []
    for token in [t.strip() for t in selection.split(",") if t.strip()]:
        if token in zoos:
            chosen.append(zoos[token])
        elif token.endswith((".yaml", ".yml")) or os.path.exists(token):
            chosen.append(load_zoo(token))
        else:
            raise ModelsatError(f"unknown zoo {token!r}; built-in zoos: {', '.join(zoos)} (or give a YAML path)")
    return chosen
