"""A local transformers causal LM as a chat model (SmolLM2-135M-Instruct by default): greedy generation with
a KV cache, token by token, and option-letter scoring from next-token logits. The aptitude runner and the
project's local OpenAI-compatible server (`modelsat.serve.local_hf_server`) both use it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from modelsat.errors import ModelsatError

LETTERS = "ABCDEFGHIJ"


def end_of_turn_ids(model) -> set[int]:
    """The token ids that end a reply by the model's generation config (Gemma's `<end_of_turn>` is not its
    tokenizer's eos token)."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if ids is None:
        return set()
    return {int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])}


class LocalChatModel:
    """Greedy chat completion and letter scoring on a local HF folder (`hf_path`; SmolLM2 when None).

    Calls are serialized by a lock: one CPU model answers one request at a time.
    """

    def __init__(self, hf_path: str | os.PathLike | None = None, threads: int | None = None,
                 layers: int | None = None):
        import torch

        from modelsat.base_models import load_smollm
        if threads:
            torch.set_num_threads(threads)
        if hf_path is not None and not (Path(hf_path) / "config.json").exists():
            raise ModelsatError(f"{hf_path}: not a transformers model folder (no config.json)")
        if layers is not None and layers < 1:
            raise ModelsatError(f"layers must be at least 1, got {layers}")
        self.tokenizer, self.model = load_smollm(n_layers=layers, path=hf_path)
        total = self.model.config.num_hidden_layers
        self.name = (Path(hf_path).name if hf_path else "SmolLM2-135M-Instruct") + (
            f"-{total}L" if layers is not None else "")
        self.eos = {self.tokenizer.eos_token_id} | end_of_turn_ids(self.model)
        self.lock = threading.Lock()
        self._letter_ids = []
        for letter in LETTERS:
            ids = self.tokenizer.encode(letter, add_special_tokens=False)
            self._letter_ids.append(ids[0] if len(ids) == 1 else None)

    def prompt_ids(self, messages: list[dict]):
        """Token ids (1, n) of the chat-templated conversation, ending with the assistant turn's start."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def stream(self, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
        """The greedy continuation, yielded as text pieces as tokens are produced; stops at end of turn."""
        import torch

        from modelsat.base_models import cache_kwarg, output_cache
        with self.lock, torch.inference_mode():
            ids = self.prompt_ids(messages)
            eos = self.eos
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            generated: list[int] = []
            shown = ""
            for _ in range(max_new_tokens):
                nxt = int(out.logits[0, -1].argmax())
                if nxt in eos:
                    break
                generated.append(nxt)
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                if len(text) > len(shown) and not text.endswith("\ufffd"):
                    yield text[len(shown):]
                    shown = text
                out = self.model(input_ids=torch.tensor([[nxt]]), use_cache=True, logits_to_keep=1,
                                 **{cache_kwarg(type(self.model)): output_cache(out)})
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            if len(text) > len(shown):
                yield text[len(shown):]

    def complete(self, messages: list[dict], max_new_tokens: int) -> dict:
        """{'text', 'prompt_tokens', 'completion_tokens', 'finish_reason'} of a greedy completion."""
        pieces = list(self.stream(messages, max_new_tokens))
        text = "".join(pieces)
        n_prompt = int(self.prompt_ids(messages).shape[1])
        n_completion = len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0
        return {"text": text, "prompt_tokens": n_prompt, "completion_tokens": n_completion,
                "finish_reason": "length" if n_completion >= max_new_tokens else "stop"}

    def best_letter(self, messages: list[dict], n_options: int) -> str:
        """The option letter whose token has the highest next-token logit after the assistant turn's start."""
        import torch
        ids = [i for i in self._letter_ids[:n_options]]
        if any(i is None for i in ids):
            raise ModelsatError(f"{self.name}: an option letter is not a single token; use generation scoring")
        with self.lock, torch.inference_mode():
            logits = self.model(input_ids=self.prompt_ids(messages), logits_to_keep=1).logits[0, -1]
        return LETTERS[int(torch.argmax(logits[ids]))]
