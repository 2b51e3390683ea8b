"""Capability text: a profile rendered as the paper's capability representation (paper, "Capability
Instructions", Figure 3): `The model achieves accuracy 85% on the task of "Mathematics, Geometry, ...",
accuracy 40% on the task of "...", ...`, with expert notes (languages, context length, price) appended."""

from __future__ import annotations

import random

from modelsat.aptitude.core_items import AptitudeTest
from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError


def _task(accuracy: float, keywords: list[str]) -> str:
    return f'accuracy {round(100 * accuracy)}% on the task of "{", ".join(keywords)}"'


def notes_text(notes: dict) -> str:
    """Expert notes as sentences, in a fixed order (languages, context length, price, then the rest by key)."""
    parts = []
    langs = notes.get("languages")
    if langs:
        parts.append("The model supports these languages: "
                     + (", ".join(langs) if isinstance(langs, (list, tuple)) else str(langs)) + ".")
    ctx = notes.get("context_length")
    if ctx:
        parts.append(f"Its context length is {ctx} tokens.")
    price = notes.get("price_per_mtok")
    if isinstance(price, dict) and price:
        inp, outp = price.get("input"), price.get("output")
        if inp is not None and outp is not None:
            parts.append(f"It costs ${inp:g} per million input tokens and ${outp:g} per million output tokens.")
        else:
            parts.append("It costs " + ", ".join(f"${v:g} per million {k} tokens" for k, v in price.items()) + ".")
    elif price is not None:
        parts.append(f"It costs ${float(price):g} per million tokens.")
    for key in sorted(k for k in notes if k not in {"languages", "context_length", "price_per_mtok"}):
        value = notes[key]
        if value not in (None, "", [], {}):
            parts.append(f"{key.replace('_', ' ').capitalize()}: {value}.")
    return " ".join(parts)


def capability_text(profile: Profile, test_or_keywords: AptitudeTest | dict[str, list[str]],
                    seed: int | None = None, with_notes: bool = True) -> str:
    """The profile as capability text; tasks in the test's order, or shuffled by `seed` (the router's
    perturbation at inference); subjects the profile lacks are left out; notes appended when present."""
    if isinstance(test_or_keywords, AptitudeTest):
        if profile.test_version != test_or_keywords.version:
            raise ModelsatError(f"profile of {profile.model!r} is for aptitude test {profile.test_version}, "
                                f"not {test_or_keywords.version}; profile the model on this test")
        keywords = test_or_keywords.keywords()
    else:
        keywords = test_or_keywords
    names = [n for n in keywords if n in profile.subjects]
    if seed is not None:
        random.Random(seed).shuffle(names)
    tasks = [_task(profile.subjects[n].accuracy, keywords[n]) for n in names]
    text = ("The model achieves " + ", ".join(tasks) + ".") if tasks else "The model has no aptitude-test results."
    if with_notes and profile.notes:
        extra = notes_text(profile.notes)
        if extra:
            text += " " + extra
    return text
