"""Instruction embeddings with all-MiniLM-L6-v2, cached on disk by text hash so each text is encoded once; and
`static_encode`, the mean of MiniLM's input token vectors (no transformer layers), which the static subject map
reads (routers/subject_map.py): MMLU subjects named as well as from the full encoder at a fiftieth of the cost.

Live instructions (inside `transient()`: the proxy, `modelsat route`) are encoded in bfloat16 where the CPU has
native bf16 matrix units (AVX512-BF16 or AMX): 13 -> 8 ms for a 90-token text on 2 cores, cosine to the float32
vector above 0.9999 (scripts/bench_routing.py says which precision it timed). Vectors stored in the disk cache,
which the benchmark and training read, are always float32, so no measured figure depends on the machine's bf16
support. `MODELSAT_LIVE_BF16=0` turns it off."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from typing import Sequence

import numpy as np

from modelsat.paths import cache_dir

DIM = 384
# all-MiniLM-L6-v2 was trained on 128-token inputs; longer texts are cut there. Past 128 tokens the tail moves the
# embedding little (cosine 0.976 to 256-token embeddings on 800 benchmark prompts) and costs 1.5x the time.
MAX_TOKENS = 128
_lock = threading.Lock()
_model = None
_live_model = None
_local = threading.local()


@contextlib.contextmanager
def transient():
    """Inside this block (in this thread), vectors `embed` computes are kept in memory for the block only, never
    written to the on-disk cache; vectors already cached (training prompts) are still read. The proxy and
    `modelsat route` embed live instructions this way, so serving never grows a file on disk or leaves a trace of
    what users asked, and a request that embeds its instruction twice (prior, subject display) encodes it once."""
    outer = getattr(_local, "memo", None)
    if outer is None:
        _local.memo = {}
    try:
        yield
    finally:
        if outer is None:
            _local.memo = None


def _encoder():
    global _model
    with _lock:
        if _model is None:
            import torch
            from transformers import AutoModel, AutoTokenizer

            from modelsat.base_models import minilm_dir
            path = minilm_dir()
            _model = (AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval(), torch)
    return _model


def live_dtype() -> str:
    """The precision live instructions are encoded in: "bfloat16" where torch sees native bf16 matrix units on
    this CPU (AVX512-BF16 or AMX; emulated bf16 would be slower than float32) unless MODELSAT_LIVE_BF16=0, else
    "float32"."""
    if os.environ.get("MODELSAT_LIVE_BF16", "1").strip().lower() in ("0", "false", "no", "off"):
        return "float32"
    import torch
    try:
        native = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:   # a torch without these probes: stay on float32
        native = False
    return "bfloat16" if native else "float32"


def _live_encoder():
    """(tokenizer, a bfloat16 copy of MiniLM, torch), made once from `_encoder()`'s float32 model."""
    global _live_model
    tok, enc, torch = _encoder()
    with _lock:
        if _live_model is None:
            import copy
            _live_model = copy.deepcopy(enc).to(torch.bfloat16).eval()
    return tok, _live_model, torch


def encode(texts: Sequence[str], batch_size: int = 64, live: bool = False) -> np.ndarray:
    """(n, 384) float32 unit-norm mean-pooled MiniLM embeddings, computed now (no cache). `live`: encode in
    `live_dtype()` (bfloat16 where the CPU does it natively), as for a live request."""
    tok, enc, torch = _live_encoder() if live and live_dtype() == "bfloat16" else _encoder()
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    # sort by length so padding is small
    order = np.argsort([len(t) for t in texts])
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            b = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            h = enc(**b).last_hidden_state.float()
            m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
            out[idx] = e.numpy()
    return out


_static = None


def _static_table():
    """(fast tokenizer, (vocab, 384) float32 token vectors) of all-MiniLM-L6-v2, loaded once (~1 s)."""
    global _static
    with _lock:
        if _static is None:
            from safetensors import safe_open
            from transformers import AutoTokenizer

            from modelsat.base_models import minilm_dir
            path = minilm_dir()
            with safe_open(str(path / "model.safetensors"), "np") as f:
                table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
            _static = (AutoTokenizer.from_pretrained(path), table)
    return _static


STATIC_MAX_TOKENS = 512


def static_encode(texts: Sequence[str]) -> np.ndarray:
    """(n, 384) float32 unit-norm means of MiniLM's input token vectors over each text's first 512 tokens.

    A bag of word vectors: no attention, no layers, about 0.5 ms a text, so it is never cached (nothing of a
    live instruction reaches the disk). A text with no token (empty) maps to the zero vector."""
    tok, table = _static_table()
    ids = tok([t if isinstance(t, str) else str(t) for t in texts], add_special_tokens=False, truncation=True,
              max_length=STATIC_MAX_TOKENS)["input_ids"]
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float32)
    for i, row in enumerate(ids):
        if row:
            v = table[row].mean(0)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


def cache_file():
    """The cache's sqlite file; its name carries the truncation length, so a change never reads stale vectors."""
    return cache_dir() / f"minilm-embeddings-t{MAX_TOKENS}.sqlite"


def _connect() -> sqlite3.Connection:
    """The on-disk cache, its table made where it is new (the caller closes it)."""
    db = sqlite3.connect(cache_file(), timeout=60)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS emb (k TEXT PRIMARY KEY, v BLOB)")
    except BaseException:
        db.close()
        raise
    return db


def in_disk_cache(texts: Sequence[str]) -> list[bool]:
    """Whether each text's vector is in the on-disk cache (so `embed` would read it, not run MiniLM)."""
    if not cache_file().exists():
        return [False] * len(texts)
    db = _connect()
    try:
        return [db.execute("SELECT 1 FROM emb WHERE k = ?", (_key(t),)).fetchone() is not None for t in texts]
    finally:
        db.close()


def embed(texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """(n, 384) embeddings of `texts`, read from the on-disk cache where present, computed and stored otherwise."""
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    keys = [_key(t) for t in texts]
    db = _connect()
    try:
        memo = getattr(_local, "memo", None)    # a dict inside transient(), else None
        found: dict[str, np.ndarray] = {k: memo[k] for k in keys if k in memo} if memo is not None else {}
        uniq = [k for k in dict.fromkeys(keys) if k not in found]
        for start in range(0, len(uniq), 500):
            chunk = uniq[start:start + 500]
            q = f"SELECT k, v FROM emb WHERE k IN ({','.join('?' * len(chunk))})"
            for k, v in db.execute(q, chunk):
                found[k] = np.frombuffer(v, dtype=np.float32)
        todo = [k for k in uniq if k not in found]
        if todo:
            first = {k: t for k, t in zip(keys, texts)}
            todo_texts = [first[k] for k in todo]
            step = 2048
            iterator = range(0, len(todo_texts), step)
            if progress:
                from rich.progress import track
                iterator = track(iterator, description=f"embedding {len(todo_texts)} texts")
            for start in iterator:
                vecs = encode(todo_texts[start:start + step], batch_size=batch_size, live=memo is not None)
                if memo is not None:
                    memo.update(zip(todo[start:start + step], vecs))
                else:
                    rows = [(k, v.tobytes()) for k, v in zip(todo[start:start + step], vecs)]
                    db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
                    db.commit()
                found.update({k: v for k, v in zip(todo[start:start + step], vecs)})
    finally:
        db.close()
    return np.stack([found[k] for k in keys]) if keys else np.zeros((0, DIM), dtype=np.float32)
