"""A model's capability profile: per-subject accuracy on the aptitude test (design.md, "Contracts")."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modelsat.errors import ModelsatError
from modelsat.files import write_json_atomic  # noqa: F401  (re-exported: older imports use it from here)


@dataclass
class SubjectScore:
    accuracy: float          # in [0, 1]
    n_items: int             # how many items the accuracy rests on
    basis: str = "core"      # "core": the test's own items; "fallback": other items of the same subject;
    #                          "inferred": items whose subject the subject map inferred (no subject recorded)


@dataclass
class Profile:
    """Per-subject accuracy of one model on one aptitude-test version, with notes and provenance."""

    model: str
    test_version: str
    subjects: dict[str, SubjectScore]
    notes: dict = field(default_factory=dict)        # languages, context_length, price_per_mtok {input, output}
    provenance: dict = field(default_factory=dict)   # records file or endpoint, date
    # other tasks the model was measured on beyond the aptitude test (benchmark name -> accuracy on its items,
    # e.g. "routerdc/gsm8k"): read by the profile prior's task classifier; optional, empty for a plain profile
    tasks: dict[str, SubjectScore] = field(default_factory=dict)

    @property
    def mean_accuracy(self) -> float:
        vals = [s.accuracy for s in self.subjects.values()]
        return sum(vals) / len(vals) if vals else 0.0

    @property
    def price(self) -> float | None:
        """USD per million tokens (mean of input and output) when the notes give it."""
        p = self.notes.get("price_per_mtok")
        if isinstance(p, dict):
            vals = [float(v) for v in p.values() if v is not None]
            return sum(vals) / len(vals) if vals else None
        return float(p) if p is not None else None

    def accuracy_vector(self, subjects: list[str], default: float | None = None) -> list[float]:
        """Accuracies in the order of `subjects`; a missing subject gets `default` (mean accuracy if None)."""
        fill = self.mean_accuracy if default is None else default
        return [self.subjects[s].accuracy if s in self.subjects else fill for s in subjects]

    def to_dict(self) -> dict:
        d = {"model": self.model, "test_version": self.test_version,
             "subjects": {k: asdict(v) for k, v in self.subjects.items()},
             "notes": self.notes, "provenance": self.provenance}
        if self.tasks:
            d["tasks"] = {k: asdict(v) for k, v in self.tasks.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "<profile>") -> "Profile":
        try:
            subjects = {k: SubjectScore(float(v["accuracy"]), int(v["n_items"]), str(v.get("basis", "core")))
                        for k, v in d["subjects"].items()}
            tasks = {k: SubjectScore(float(v["accuracy"]), int(v["n_items"]), str(v.get("basis", "task")))
                     for k, v in (d.get("tasks") or {}).items()}
            prof = cls(model=str(d["model"]), test_version=str(d["test_version"]), subjects=subjects,
                       notes=dict(d.get("notes") or {}), provenance=dict(d.get("provenance") or {}), tasks=tasks)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelsatError(f"{source}: not a modelsat profile ({type(exc).__name__}: {exc}); "
                                "expected keys model, test_version, subjects{name: {accuracy, n_items}}") from exc
        check_price(prof.notes.get("price_per_mtok"), f"{source}: notes.price_per_mtok")
        for kind, scores in (("subject", prof.subjects), ("task", prof.tasks)):
            for name, s in scores.items():
                if not 0.0 <= s.accuracy <= 1.0:
                    raise ModelsatError(f"{source}: {kind} {name!r} accuracy {s.accuracy} is outside [0, 1]")
        return prof

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the profile as JSON, atomically."""
        return write_json_atomic(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Profile":
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ModelsatError(f"{p}: no such profile file; make one with `modelsat profile`") from None
        except OSError as exc:
            raise ModelsatError(f"{p}: cannot read the profile ({exc.strerror or exc})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            cut = isinstance(exc, json.JSONDecodeError) and exc.pos >= len(exc.doc.rstrip()) - 1
            raise ModelsatError(f"{p}: not a complete profile JSON ({exc}"
                                + ("; the file ends early: truncated?" if cut else "")
                                + "); make it again with `modelsat profile`") from None
        return cls.from_dict(data, source=str(p))


def check_price(price, where: str) -> None:
    """Refuses a price that is not a non-negative number of USD per million tokens, or {input, output} of them."""
    if price is None:
        return
    values = price.values() if isinstance(price, dict) else [price]
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelsatError(f"{where} is {v!r}, not a number; give USD per million tokens, e.g. `price: 0.2` "
                                "or `price: {input: 0.15, output: 0.6}`")
        if v < 0:
            raise ModelsatError(f"{where} is {v}; a price cannot be negative")
