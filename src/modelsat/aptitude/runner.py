"""Make a model take the aptitude test: an OpenAI-compatible endpoint or a local transformers model answers
the core items with a fixed prompt; answers go to a JSONL journal (flushed and fsynced one by one) so an
interrupted run resumes where it stopped; the scored answers become a profile.

Circle test (paper, "Training Strategy"): for hard items (pool share below `circle_threshold`) the options
are rotated and the item counts as correct only if the model is right under every rotation.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelsat.aptitude.core_items import LETTERS, AptitudeTest, CoreItem
from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.errors import ModelsatError

PROMPT_VERSION = "mc-v1"
DEFAULT_LOCAL = "smollm"   # --hf-path value meaning SmolLM2-135M-Instruct from base_models
RETRY_STATUS = {429, 500, 502, 503, 504}


# ------------------------------------------------------------------------------------------- prompt, parsing

def rotate(item: CoreItem, rotation: int) -> tuple[list[str], str]:
    """The options shifted left by `rotation` places, and the answer letter under that order."""
    n = len(item.options)
    k = rotation % n
    options = item.options[k:] + item.options[:k]
    return options, LETTERS[(LETTERS.index(item.answer) - k) % n]


def item_prompt(subject: str, question: str, options: list[str]) -> str:
    """The fixed prompt of a core item: instruction, question, lettered options, 'Answer:'."""
    letters = LETTERS[: len(options)]
    lines = [f"The following is a multiple choice question about {subject.replace('_', ' ')}. "
             f"Reply with the letter ({letters[0]}-{letters[-1]}) of the correct option only.", "",
             question.strip()]
    lines += [f"{letters[i]}. {str(o).strip()}" for i, o in enumerate(options)]
    lines += ["", "Answer:"]
    return "\n".join(lines)


def parse_letter(text: str | None, n_options: int) -> str | None:
    """The answer letter in a model's reply, or None: 'C', 'C.', '(C)', 'C) ...', 'Answer: C',
    'The answer is (C)', '**C**'; a lone letter beyond the item's options does not count."""
    if not text:
        return None
    valid = LETTERS[:n_options]
    t = text.strip().replace("*", "")
    patterns = [
        r"(?i:answer)\s*(?:(?i:is)\s*)?:?\s*\(?([A-J])(?![A-Za-z])",   # "Answer: C", "the answer is (C)"
        r"^\(?([A-J])(?:[\).:,]|$|\s(?![a-z]))",                     # "C", "C.", "(C)", "C) text", "C Paris"
        r"(?:^|[\s(\[])([A-J])(?:[\).:\]]|$)",                        # "... (C) ...", "... option C."
    ]
    for pattern in patterns:
        m = re.search(pattern, t)
        if m and m.group(1) in valid:
            return m.group(1)
    return None


# ------------------------------------------------------------------------------------------- the journal

ITEM_CHOICE_SETTINGS = ("limit",)   # settings that only choose which items are asked, not how each is answered


def answer_settings(settings) -> dict | None:
    """The settings that decide how an item is answered (a journal's answers are reused only under the same
    ones): `settings` without those that only choose items (ITEM_CHOICE_SETTINGS)."""
    if not isinstance(settings, dict):
        return settings
    return {k: v for k, v in settings.items() if k not in ITEM_CHOICE_SETTINGS}


class Journal:
    """Append-only JSONL of answers beside the output; its first line names the model and the test version.

    A run with other settings (prompt, scoring, circular evaluation ...) is refused; one with another `limit`
    is not: the items already answered are kept, so `--limit 100` now and the whole test later ask each item once.

    Every answer is flushed and fsynced before the next one starts, so a killed run loses at most the answer
    in flight; a torn last line (killed mid-write) is cut off on reopening.
    """

    def __init__(self, path: str | os.PathLike, model: str, test_version: str, settings: dict):
        self.path = Path(path)
        self.done: dict[str, dict] = {}
        header = {"journal": "modelsat-aptitude-answers", "model": model, "test_version": test_version,
                  "settings": settings}
        if self.path.exists() and self.path.stat().st_size > 0:
            self._reopen(header)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
            self._write(header)

    def _reopen(self, header: dict) -> None:
        raw = self.path.read_bytes()
        cut = raw.rfind(b"\n") + 1
        if cut < len(raw):   # a torn last line from a killed run: drop it
            with open(self.path, "r+b") as f:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
            raw = raw[:cut]
        lines = raw.decode("utf-8").splitlines()
        try:
            first = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError) as exc:
            raise ModelsatError(f"{self.path}: not a modelsat answer journal ({exc}); move it away") from exc
        for key in ("model", "test_version", "settings"):
            theirs, ours = first.get(key), header[key]
            if key == "settings":
                theirs, ours = answer_settings(theirs), answer_settings(ours)
            if theirs != ours:
                raise ModelsatError(f"{self.path}: this journal belongs to another run ({key} "
                                    f"{first.get(key)!r}, this run {header[key]!r}); pass another --out or "
                                    "move the journal away")
        for n, line in enumerate(lines[1:], start=2):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ModelsatError(f"{self.path}: line {n} is not JSON ({exc})") from exc
            self.done[rec["key"]] = rec
        self._f = open(self.path, "a", encoding="utf-8")

    def _write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def append(self, rec: dict) -> None:
        self._write(rec)
        self.done[rec["key"]] = rec

    def close(self) -> None:
        self._f.close()


def journal_path(out: str | os.PathLike) -> Path:
    """The journal beside a profile file: `<out>.journal.jsonl`."""
    p = Path(out)
    return p.with_name(p.name + ".journal.jsonl")


# ------------------------------------------------------------------------------------------- the work

@dataclass
class Task:
    key: str            # "<item_id>#<rotation>"
    subject: str
    item: CoreItem
    rotation: int
    prompt: str
    answer: str         # the right letter under this rotation
    n_options: int


def plan(test: AptitudeTest, limit: int | None = None, circle: bool = False, circle_threshold: float = 0.5,
         circle_rotations: int = 4) -> list[Task]:
    """The prompts to send: items interleaved across subjects (so `limit` covers many subjects), each once,
    or under `circle_rotations` rotations when `circle` is on and the item is hard."""
    by_subject = [[(s.name, it) for it in s.items] for s in test.subjects]
    order = [pair for rank in range(max(len(x) for x in by_subject))
             for x in by_subject if rank < len(x) for pair in [x[rank]]]
    if limit is not None:
        order = order[:limit]
    tasks = []
    for subject, it in order:
        hard = it.pool_share is None or it.pool_share < circle_threshold
        rotations = range(min(circle_rotations, len(it.options))) if circle and hard else [0]
        for r in rotations:
            options, answer = rotate(it, r)
            tasks.append(Task(f"{it.benchmark}/{it.item_id}#{r}", subject, it, r,
                              item_prompt(subject, it.question, options), answer, len(options)))
    return tasks


def score(test: AptitudeTest, tasks: list[Task], answers: dict[str, dict]) -> dict[str, SubjectScore]:
    """Per-subject accuracy: an item is correct when every one of its planned rotations was answered right."""
    per_item: dict[tuple[str, str], list[bool]] = {}
    subject_of = {}
    for t in tasks:
        k = (t.item.benchmark, t.item.item_id)
        per_item.setdefault(k, []).append(bool(answers[t.key]["correct"]))
        subject_of[k] = t.subject
    sums: dict[str, list[int]] = {}
    for k, oks in per_item.items():
        sums.setdefault(subject_of[k], []).append(int(all(oks)))
    return {s: SubjectScore(sum(v) / len(v), len(v), "core") for s in test.subject_names
            for v in [sums.get(s)] if v}


class EndpointError(ModelsatError):
    """An endpoint that keeps failing, times out, or answers with something that is not a chat completion."""


class EndpointAnswerer:
    """Sends a prompt to an OpenAI-compatible /v1/chat/completions and returns the reply's text."""

    def __init__(self, url: str, model: str, api_key: str | None = None, max_tokens: int = 5,
                 timeout: float = 60.0, retries: int = 4, backoff: float = 0.5, max_backoff: float = 20.0):
        base = url.rstrip("/")
        if not base.endswith("/chat/completions"):
            base = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.url, self.model, self.max_tokens = base, model, max_tokens
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        return min(self.backoff * 2 ** attempt, self.max_backoff)

    async def answer(self, client, prompt: str, stop: asyncio.Event | None = None) -> tuple[str, dict | None]:
        """The reply's text and its token usage ({prompt_tokens, completion_tokens}, None if not reported).
        Once `stop` is set (Ctrl-C), no further attempt is made: it raises CancelledError."""
        import httpx
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": self.max_tokens, "temperature": 0}
        last = ""
        for attempt in range(self.retries + 1):
            if stop is not None and stop.is_set():
                raise asyncio.CancelledError()
            retry_after = None
            try:
                resp = await client.post(self.url, json=body, headers=self._headers, timeout=self.timeout)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g} s (timeout)"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                if resp.status_code == 200:
                    return self._content(resp)
                last = f"HTTP {resp.status_code}: {resp.text[:200]!r}"
                if resp.status_code not in RETRY_STATUS:
                    hint = " (check the key in --api-key-env)" if resp.status_code in (401, 403) else ""
                    raise EndpointError(f"{self.url} refused the request: {last}{hint}")
                retry_after = resp.headers.get("retry-after")
            if attempt < self.retries:
                await asyncio.sleep(self._delay(attempt, retry_after))
        raise EndpointError(f"{self.url} failed {self.retries + 1} times; last: {last}. Answers so far are kept "
                            "in the journal; rerun the same command to resume.")

    def _content(self, resp) -> tuple[str, dict | None]:
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EndpointError(f"{self.url} answered HTTP 200 with a body that is not an OpenAI chat "
                                f"completion ({type(exc).__name__}: {exc}); body starts {resp.text[:200]!r}") from exc
        return (content if isinstance(content, str) else ""), usage_of(data)


def usage_of(data) -> dict | None:
    """{prompt_tokens, completion_tokens} of a chat completion's `usage`, or None when it reports none."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    try:
        return {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0)}
    except (TypeError, ValueError):
        return None


def _progress(total: int, done: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    prog = Progress(TextColumn("aptitude test"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)
    return prog


def _record(task: Task, response: str, pred: str | None, seconds: float, usage: dict | None = None) -> dict:
    return {"key": task.key, "subject": task.subject, "item_id": task.item.item_id,
            "benchmark": task.item.benchmark, "rotation": task.rotation, "response": response, "pred": pred,
            "answer": task.answer, "correct": pred == task.answer, "seconds": round(seconds, 3),
            **({"usage": usage} if usage is not None else {})}


def run_endpoint(test: AptitudeTest, answerer: EndpointAnswerer, journal: Journal, tasks: list[Task],
                 concurrency: int = 8, progress: bool = True) -> dict[str, dict]:
    """Answers every task not yet in the journal through the endpoint, `concurrency` at a time."""
    import httpx
    todo = [t for t in tasks if t.key not in journal.done]

    async def main():
        queue = list(reversed(todo))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        stop = asyncio.Event()
        workers: list[asyncio.Task] = []

        def interrupted() -> None:
            # Ctrl-C: every worker stops, and none starts another attempt even if an HTTP client swallows the
            # cancellation (asyncio.run's own handler cancels only the main task and waits on the workers)
            stop.set()
            for w in workers:
                w.cancel()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, interrupted)
            handled = True
        except (ValueError, RuntimeError, NotImplementedError):   # not the main thread, or no signals here
            handled = False
        try:
            with _progress(len(tasks), len(tasks) - len(todo), progress) as prog:
                bar = prog.add_task("items", total=len(tasks), completed=len(tasks) - len(todo))
                async with httpx.AsyncClient(limits=limits) as client:
                    async def worker():
                        while queue and not stop.is_set():
                            task = queue.pop()
                            t0 = time.perf_counter()
                            text, usage = await answerer.answer(client, task.prompt, stop)
                            journal.append(_record(task, text, parse_letter(text, task.n_options),
                                                   time.perf_counter() - t0, usage))
                            prog.advance(bar)
                    try:
                        async with asyncio.TaskGroup() as tg:
                            for _ in range(max(1, min(concurrency, len(todo)))):
                                workers.append(tg.create_task(worker()))
                    except* ModelsatError as eg:
                        raise eg.exceptions[0] from None
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)
        if stop.is_set():
            raise KeyboardInterrupt

    if todo:
        asyncio.run(main())
    return journal.done


def run_local(test: AptitudeTest, lm, journal: Journal, tasks: list[Task], scoring: str = "logits",
              max_tokens: int = 5, progress: bool = True) -> dict[str, dict]:
    """Answers every task not yet in the journal with a LocalChatModel: by next-token logits over the option
    letters (`scoring="logits"`) or by greedy generation of `max_tokens` tokens and the first letter."""
    todo = [t for t in tasks if t.key not in journal.done]
    with _progress(len(tasks), len(tasks) - len(todo), progress) as prog:
        bar = prog.add_task("items", total=len(tasks), completed=len(tasks) - len(todo))
        for task in todo:
            t0 = time.perf_counter()
            messages = [{"role": "user", "content": task.prompt}]
            if scoring == "logits":
                text = lm.best_letter(messages, task.n_options)
            else:
                text = lm.complete(messages, max_tokens)["text"]
            journal.append(_record(task, text, parse_letter(text, task.n_options), time.perf_counter() - t0))
            prog.advance(bar)
    return journal.done


def take_test(test: AptitudeTest, out: str | os.PathLike, model: str, *, endpoint: str | None = None,
              api_key: str | None = None, hf_path: str | None = None, lm=None, scoring: str = "logits",
              concurrency: int = 8, limit: int | None = None, circle: bool = False,
              circle_threshold: float = 0.5, circle_rotations: int = 4, max_tokens: int = 5,
              timeout: float = 60.0, retries: int = 4, backoff: float = 0.5, notes: dict | None = None,
              progress: bool = True, threads: int | None = 1,
              on_start: Callable[[int, int], None] | None = None) -> Profile:
    """Runs the test on an endpoint (`endpoint`) or a local model (`hf_path`, "smollm" for SmolLM2, or a ready
    `lm`), resuming from
    the journal beside `out`, and writes the profile to `out`. Returns the profile."""
    if (endpoint is None) == (hf_path is None and lm is None):
        raise ModelsatError("give exactly one of an endpoint URL or a local model (--endpoint or --hf-path)")
    if scoring not in ("logits", "generate"):
        raise ModelsatError(f"scoring {scoring!r} unknown; use 'logits' or 'generate'")
    tasks = plan(test, limit, circle, circle_threshold, circle_rotations)
    if endpoint is not None:
        how = {"method": "endpoint", "endpoint": endpoint, "scoring": "first option letter of the reply",
               "max_tokens": max_tokens}
    else:
        how = {"method": "hf", "hf_path": str(hf_path) if hf_path and hf_path != DEFAULT_LOCAL
               else "SmolLM2-135M-Instruct (base_models)",
               "scoring": ("next-token logits over the option letters" if scoring == "logits"
                           else "first option letter of a greedy reply"),
               **({"max_tokens": max_tokens} if scoring == "generate" else {})}
    settings = {**how, "prompt": PROMPT_VERSION, "limit": limit, "circle": circle,
                **({"circle_threshold": circle_threshold, "circle_rotations": circle_rotations} if circle else {})}
    jpath = journal_path(out)
    journal = Journal(jpath, model, test.version, settings)
    already = sum(t.key in journal.done for t in tasks)
    if on_start:
        on_start(len(tasks), already)
    t0 = time.perf_counter()
    try:
        if endpoint is not None:
            answerer = EndpointAnswerer(endpoint, model, api_key, max_tokens, timeout, retries, backoff)
            answers = run_endpoint(test, answerer, journal, tasks, concurrency, progress)
        else:
            if lm is None:
                from modelsat.aptitude.local_model import LocalChatModel
                lm = LocalChatModel(None if hf_path == DEFAULT_LOCAL else hf_path, threads=threads)
            answers = run_local(test, lm, journal, tasks, scoring, max_tokens, progress)
    finally:
        journal.close()
    subjects = score(test, tasks, answers)
    unparsed = sum(1 for t in tasks if answers[t.key]["pred"] is None)
    seconds = sum(float(answers[t.key].get("seconds", 0)) for t in tasks)
    usages = [answers[t.key]["usage"] for t in tasks if "usage" in answers[t.key]]
    prof = Profile(model=model, test_version=test.version, subjects=subjects, notes=dict(notes or {}),
                   provenance={**settings, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                               "journal": jpath.name, "prompts": len(tasks), "unparsed_answers": unparsed,
                               "test_items": sum(len(s.items) for s in test.subjects),
                               "answer_seconds_total": round(seconds, 1),
                               "answered_this_run": len(tasks) - already,
                               "wall_seconds_this_run": round(time.perf_counter() - t0, 1),
                               "tokens": {"prompt": sum(u["prompt_tokens"] for u in usages),
                                          "completion": sum(u["completion_tokens"] for u in usages),
                                          "replies_reporting_usage": len(usages)}})
    prof.save(out)
    return prof


def run_summary(prof: Profile, price_in: float | None = None, price_out: float | None = None) -> dict:
    """What a finished run cost and found, from its profile's provenance: accuracy per subject, replies that
    could not be parsed, tokens spent and (given a price in USD per million tokens) their cost."""
    prov = prof.provenance
    tokens = prov.get("tokens") or {}
    p_in, p_out = price_in, price_out if price_out is not None else price_in
    cost = None
    if p_in is not None and tokens.get("replies_reporting_usage"):
        cost = (tokens["prompt"] * p_in + tokens["completion"] * (p_out or 0.0)) / 1e6
    wall = prov.get("wall_seconds_this_run") or 0.0
    answered = prov.get("answered_this_run") or 0
    return {"subjects": {name: (s.accuracy, s.n_items) for name, s in sorted(prof.subjects.items())},
            "prompts": prov.get("prompts"), "unparsed": prov.get("unparsed_answers"),
            "prompt_tokens": tokens.get("prompt"), "completion_tokens": tokens.get("completion"),
            "replies_reporting_usage": tokens.get("replies_reporting_usage"), "cost_usd": cost,
            "answered_this_run": answered, "items_per_s": answered / wall if wall > 0 else None}
