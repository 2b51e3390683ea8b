"""The Model-SAT model (paper, "Architecture", eq. 2–4), plus the explicit prior.

    e_c   = W · ψ(c)                       capability encoder ψ, connector W -> soft tokens (eq. 2)
    z     = [e_c, e_x, e_p]  (paper order)  or  [e_x, e_c, e_p]  (fast order)       (eq. 3)
            or [e_x, e_p, e_c] ("fastest": the per-candidate part is only its few soft tokens)
            or [e_p, e_x, e_c] ("prompt-first": as fastest, and the prompt, the same for every request,
                                 is read once per process: its keys/values are kept while φ's weights stay)
    score = gate · (logit_Yes − logit_No at the last position of φ(z))  +  scale · logit(prior)  +  bias

The prior (prior.py) is the candidate's profile accuracy at the instruction's subjects; the LM term is the
learned correction and starts small (LM_GATE_INIT), so an untrained router ranks like the prior. In the fast
order the instruction comes first: its keys/values are computed once and shared by every candidate
(`score_shared`), which is what makes routing among many candidates cheap. With `encoder="none"` φ reads the
capability text as plain tokens (the paper's no-alignment ablation).
"""

from __future__ import annotations

import json

from typing import Sequence

import numpy as np
import torch
from torch import nn

from modelsat.aptitude.profile import Profile
from modelsat.base_models import cache_kwarg, output_cache
from modelsat.routers.modelsat.config import INQUIRY_PROMPT, ModelConfig

LM_GATE_INIT = 0.1                 # the LM term starts small, so an untrained router ranks like the prior
LORA = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}   # stage 2's adapters on φ
TINY_HIDDEN, TINY_LAYERS = 64, 2   # the random "tiny" LM of the tests
TINY_INIT_RANGE = 0.2              # a random 0.02-init tiny LM barely moves in a few dozen steps
TINY_GATE_INIT = 1.0               # the tests' tiny LM starts with its whole term

USER_HEAD = "<|im_start|>user\n"
ASSISTANT_HEAD = "<|im_end|>\n<|im_start|>assistant\n"


def profile_key(profile: Profile) -> tuple:
    """What a candidate's scores depend on in its profile: a key to memoise them by its content."""
    return (profile.model, profile.test_version,
            tuple((k, v.accuracy, v.n_items) for k, v in profile.subjects.items()),
            tuple((k, v.accuracy, v.n_items) for k, v in profile.tasks.items()),
            json.dumps(profile.notes, sort_keys=True, default=str))


# ---- loading the two base models ------------------------------------------------------------------------------
def _load_lm(cfg: ModelConfig, seed: int):
    """(tokenizer, causal LM) for cfg.lm: the packaged SmolLM2, a random tiny Llama (tests), or a local folder."""
    from modelsat.base_models import load_smollm, smollm_dir
    dtype = torch.float32
    if cfg.lm == "tiny":
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
        tok = AutoTokenizer.from_pretrained(smollm_dir())
        torch.manual_seed(seed)
        lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tok), hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN,
            num_hidden_layers=TINY_LAYERS, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=2048, tie_word_embeddings=True,
            initializer_range=TINY_INIT_RANGE)).to(dtype)
        return tok, lm.eval()
    return load_smollm(n_layers=cfg.lm_layers, dtype=dtype, path=None if cfg.lm == "smollm2" else cfg.lm)


def _load_encoder(cfg: ModelConfig, seed: int):
    """(tokenizer, encoder) for cfg.encoder, or (None, None) for the no-encoder variant."""
    if cfg.encoder == "none":
        return None, None
    from transformers import AutoModel, AutoTokenizer
    from modelsat.base_models import minilm_dir
    if cfg.encoder == "tiny":
        from transformers import BertConfig, BertModel
        tok = AutoTokenizer.from_pretrained(minilm_dir())
        torch.manual_seed(seed + 1)
        enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=64, max_position_embeddings=512),
                        add_pooling_layer=False)
        return tok, enc.eval()
    path = minilm_dir() if cfg.encoder == "minilm" else cfg.encoder
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _token_id(tok, word: str, fallback: int) -> int:
    ids = tok(word, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else fallback


def _all_keywords() -> dict[str, list[str]]:
    from modelsat.aptitude.core_items import subject_keywords
    return subject_keywords()


def keyword_lines(subjects: Sequence[str]) -> dict[str, list[str]]:
    """The aptitude test's five keywords per subject; a subject without keywords is described by its name."""
    kw = _all_keywords()
    return {s: kw.get(s) or [s.replace("_", " ").title()] for s in subjects}


class ModelSAT(nn.Module):
    """ψ → W → soft tokens → φ → Yes-vs-No log-odds, plus gate/scale/bias of the prior term."""

    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        self.tok, self.lm = _load_lm(cfg, seed)
        self.enc_tok, self.encoder = _load_encoder(cfg, seed)
        d_lm = self.lm.config.hidden_size
        torch.manual_seed(seed + 2)
        self.connector: nn.Module | None = None
        if self.encoder is not None:
            d_enc = self.encoder.config.hidden_size
            self.connector = nn.Linear(d_enc, d_lm)      # the paper's single layer
        self.profile_subjects = sorted(_all_keywords())
        self.profile_projector: nn.Module | None = None
        if cfg.profile_tokens > 0:
            self.profile_projector = nn.Linear(len(self.profile_subjects), cfg.profile_tokens * d_lm)
            emb_norm = float(self.lm.get_input_embeddings().weight.detach().norm(dim=-1).mean())
            with torch.no_grad():   # start at the norm of a token embedding
                self.profile_projector.weight.mul_(emb_norm)
                self.profile_projector.bias.zero_()
        self.prior_projector: nn.Module | None = None
        if cfg.profile_tokens > 0:   # the prior, as a number, added to the profile tokens
            self.prior_projector = nn.Linear(1, cfg.profile_tokens * d_lm)
            with torch.no_grad():
                self.prior_projector.weight.normal_(0.0, emb_norm / d_lm ** 0.5)
                self.prior_projector.bias.zero_()
        gate = (TINY_GATE_INIT if cfg.lm == "tiny" else LM_GATE_INIT) if cfg.has_prior else 1.0
        self.lm_gate = nn.Parameter(torch.tensor(gate))
        self.prior_scale = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.tensor(0.0))
        if cfg.tuning == "lora":
            from peft import LoraConfig, inject_adapter_in_model
            torch.manual_seed(seed + 3)
            inject_adapter_in_model(LoraConfig(r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=0.0,
                                               target_modules=list(LORA["target_modules"])), self.lm)
        from modelsat.base_models import NO_TOKEN_ID, YES_TOKEN_ID
        self.yes_id = _token_id(self.tok, "Yes", YES_TOKEN_ID)
        self.no_id = _token_id(self.tok, "No", NO_TOKEN_ID)
        self._ids_cache: dict[str, list[int]] = {}
        self._psi_cache: dict[str, torch.Tensor] = {}
        self._cap_cache: dict[tuple, torch.Tensor] = {}   # inference only; cleared whenever weights may change
        self._head_kv_cache: tuple | None = None            # the prompt-first head's keys/values (_head_kv)
        self.pack_tokens = 768     # score_matrix packs several instructions into one forward of about this length
        self.set_stage(0)

    # ---- inference speed: cached capability inputs, LoRA merged into φ while not training -----------------------
    def train(self, mode: bool = True) -> "ModelSAT":
        if mode:
            self._cap_cache.clear()
            self._merge_lora(False)
        super().train(mode)
        if self.encoder is not None and not self.cfg.train_encoder:
            # a frozen ψ stays in eval mode: with dropout on, the ψ outputs cached while training would be one
            # noisy draw per training model, unlike those of a new model (or of a reloaded router), read clean
            self.encoder.eval()
        return self

    def _merge_lora(self, merged: bool) -> None:
        """Folds the LoRA deltas into φ's weights (one matmul per projection instead of three) or takes them out."""
        if self.cfg.tuning != "lora":
            return
        from peft.tuners.lora import LoraLayer
        for m in self.lm.modules():
            if isinstance(m, LoraLayer):
                if merged and not m.merged:
                    m.merge()
                elif not merged and m.merged:
                    m.unmerge()

    # ---- what trains when ---------------------------------------------------------------------------------
    def _lm_trainable(self) -> list[nn.Parameter]:
        if self.cfg.tuning == "lora":
            return [p for n, p in self.lm.named_parameters() if "lora_" in n]
        if self.cfg.tuning == "full":
            return list(self.lm.parameters())
        return []

    def _head(self) -> list[nn.Parameter]:
        return [self.lm_gate, self.prior_scale, self.bias]

    def set_stage(self, stage: int, lr_connector: float = 1e-3, lr_lm: float = 1e-4) -> list[dict]:
        """Freezes all but what `stage` trains (0 = nothing, 1 = connector + head, 2 = + φ's LoRA/all and ψ if
        configured, paper "Learning Strategy"); returns the optimizer's parameter groups."""
        self._merge_lora(False)
        self._cap_cache.clear()
        for p in self.parameters():
            p.requires_grad_(False)
        if stage == 0:
            return []
        fast = self._head() + [p for mod in (self.connector, self.profile_projector, self.prior_projector)
                               if mod is not None
                               for p in mod.parameters()]
        slow: list[nn.Parameter] = []
        if stage >= 2:
            slow = self._lm_trainable()
            if self.cfg.train_encoder and self.encoder is not None:
                fast += list(self.encoder.parameters())
                self._psi_cache.clear()
        for p in fast + slow:
            p.requires_grad_(True)
        groups = [{"params": fast, "lr": lr_connector, "name": "connector+head"}]
        if slow:
            groups.append({"params": slow, "lr": lr_lm, "name": "lm"})
        return groups

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What training changes (head, connector, LoRA adapters or all of φ, ψ if trained): the saved state."""
        keep = ["lm_gate", "prior_scale", "bias", "connector.", "profile_projector.", "prior_projector."]
        if self.cfg.tuning == "lora":
            keep.append("lora_")
        state = {}
        for name, t in self.state_dict().items():
            lm_full = self.cfg.tuning == "full" and name.startswith("lm.")
            enc = self.cfg.train_encoder and name.startswith("encoder.")
            if lm_full or enc or any(name.startswith(k) or (k == "lora_" and k in name) for k in keep):
                state[name] = t.detach().cpu().contiguous()
        if self.cfg.tuning == "full" and self.lm.config.tie_word_embeddings:
            state.pop("lm.lm_head.weight", None)   # tied to the input embeddings: one copy is enough
        return state

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        self._merge_lora(False)
        self._cap_cache.clear()
        result = self.load_state_dict(state, strict=False)
        unexpected = list(result.unexpected_keys)
        if unexpected:
            raise ValueError(f"saved state has tensors this configuration does not: {unexpected[:5]}")
        if self.cfg.tuning == "full" and self.lm.config.tie_word_embeddings:
            self.lm.tie_weights()
        self._psi_cache.clear()

    # ---- text pieces --------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.bias.device

    def place(self, device: torch.device | str) -> "ModelSAT":
        """Moves the model to `device`, dropping the cached ψ outputs and capability inputs (they live on the
        device they were computed on)."""
        device = torch.device(device)
        if device != self.device:
            self._psi_cache.clear()
            self._cap_cache.clear()
            self.to(device)
        return self

    def _ids(self, text: str) -> list[int]:
        ids = self._ids_cache.get(text)
        if ids is None:
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            if len(self._ids_cache) < 200_000:
                self._ids_cache[text] = ids
        return ids

    def instruction_ids(self, instruction: str) -> list[int]:
        return (self._ids(USER_HEAD + "Instruction: ") + self._ids(instruction)[: self.cfg.max_instruction_tokens]
                + self._ids("\n"))

    def prompt_ids(self) -> list[int]:
        return self._ids(INQUIRY_PROMPT + ASSISTANT_HEAD)

    def capability_chunks(self, profile: Profile) -> list[str]:
        """The capability text (aptitude.capability_text) cut into n_soft_tokens chunks of subjects."""
        from modelsat.aptitude.capability import capability_text
        names = list(profile.subjects)
        if self.encoder is None:
            return [capability_text(profile, keyword_lines(names))]
        parts = [p for p in np.array_split(np.array(names, dtype=object), self.cfg.n_soft_tokens)]
        texts = []
        for j, part in enumerate(parts):
            prof = Profile(profile.model, profile.test_version, {n: profile.subjects[n] for n in part},
                           notes=profile.notes if j == len(parts) - 1 else {})
            texts.append(capability_text(prof, keyword_lines(list(part))))
        return texts

    def psi(self, texts: list[str]) -> torch.Tensor:
        """(n, d_enc) unit-norm mean-pooled ψ outputs; cached while ψ is frozen."""
        trainable = any(p.requires_grad for p in self.encoder.parameters())
        todo = [t for t in dict.fromkeys(texts) if trainable or t not in self._psi_cache]
        if todo:
            b = self.enc_tok(todo, padding=True, truncation=True, max_length=self.cfg.max_capability_tokens,
                             return_tensors="pt").to(self.device)
            with torch.set_grad_enabled(trainable and torch.is_grad_enabled()):
                h = self.encoder(**b).last_hidden_state
                m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
                e = nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
            fresh = dict(zip(todo, e))
            if not trainable:
                self._psi_cache.update({k: v.detach() for k, v in fresh.items()})
        else:
            fresh = {}
        return torch.stack([fresh[t] if t in fresh else self._psi_cache[t] for t in texts])

    def profile_vector(self, profile: Profile) -> torch.Tensor:
        """The profile's accuracies over the 57 MMLU subjects (missing = its mean), centred at 0.5."""
        v = profile.accuracy_vector(self.profile_subjects)
        return torch.tensor(v, dtype=torch.float32, device=self.device) - 0.5

    def capability_input(self, profile: Profile) -> torch.Tensor:
        """One candidate's capability part as input embeddings: [profile tokens, W·ψ(chunks) or text tokens]."""
        parts = []
        if self.profile_projector is not None:
            d = self.lm.config.hidden_size
            parts.append(self.profile_projector(self.profile_vector(profile)).view(self.cfg.profile_tokens, d))
        chunks = self.capability_chunks(profile)
        if self.encoder is None:
            parts.append(self._embed(self._ids(chunks[0])[: self.cfg.max_capability_tokens]))
        else:
            parts.append(self.connector(self.psi(chunks)))
        dtype = self.lm.get_input_embeddings().weight.dtype
        return torch.cat([p.to(dtype) for p in parts])

    # ---- building sequences ------------------------------------------------------------------------------
    def _embed(self, ids: list[int]) -> torch.Tensor:
        return self.lm.get_input_embeddings()(torch.tensor(ids, dtype=torch.long, device=self.device))

    def _capability_block(self, cap: torch.Tensor, prior: float | None) -> torch.Tensor:
        """The capability part as placed in the sequence (with the prior added to the profile tokens)."""
        if self.prior_projector is not None and prior is not None:
            k = self.cfg.profile_tokens
            add = self.prior_projector(torch.tensor([float(prior) - 0.5], device=self.device)).view(k, -1)
            cap = torch.cat([cap[:k] + add.to(cap.dtype), cap[k:]])
        if self.cfg.order in ("fastest", "prompt-first"):
            return cap
        return torch.cat([self._embed(self._ids("Model capability: ")), cap, self._embed(self._ids("\n"))])

    def _head_ids(self) -> list[int]:
        """What precedes the instruction in every sequence, the same for every request: the user head and the
        inquiry prompt in the prompt-first order (read once per process, `_head_kv`), nothing in the others."""
        if self.cfg.order != "prompt-first":
            return []
        return self._ids(USER_HEAD + INQUIRY_PROMPT + "\nInstruction: ")

    def _prefix_ids(self, instruction: str) -> list[int]:
        """The part of one request shared by its candidates: the instruction (and, in the fastest order, the
        prompt). The prompt-first order leaves the user's turn open (no assistant head: ~6 tokens less a request;
        the candidate's soft tokens follow the instruction and the score is read at the last of them)."""
        if self.cfg.order == "prompt-first":
            return self._ids(instruction)[: self.cfg.max_instruction_tokens] + self._ids("\n")
        ids = self.instruction_ids(instruction)
        return ids + self.prompt_ids() if self.cfg.order == "fastest" else ids

    def _suffix(self, cap, prior: float | None) -> torch.Tensor:
        """The per-candidate part (fast / fastest / prompt-first orders)."""
        if self.cfg.order in ("fastest", "prompt-first"):
            return self._capability_block(cap, prior)
        return torch.cat([self._capability_block(cap, prior), self._embed(self.prompt_ids())])

    def _sequence(self, instruction: str, cap, prior: float | None) -> torch.Tensor:
        if self.cfg.order != "paper":
            ids = self._head_ids() + self._prefix_ids(instruction)
            return torch.cat([self._embed(ids), self._suffix(cap, prior)])
        x = self._embed(self.instruction_ids(instruction))
        head = len(self._ids(USER_HEAD))   # paper order: [user head, capability, instruction, prompt]
        return torch.cat([x[:head], self._capability_block(cap, prior), x[head:], self._embed(self.prompt_ids())])

    @staticmethod
    def _pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lens = torch.tensor([len(r) for r in rows], device=rows[0].device)
        out = rows[0].new_zeros(len(rows), int(lens.max()), rows[0].shape[-1])
        mask = torch.zeros(len(rows), int(lens.max()), dtype=torch.long, device=rows[0].device)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return out, mask, lens

    def _log_odds(self, last_hidden: torch.Tensor) -> torch.Tensor:
        w = self.lm.get_output_embeddings().weight
        return last_hidden @ (w[self.yes_id] - w[self.no_id])

    def combine(self, log_odds: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """The score: gate · LM log-odds (+ scale · logit(prior)) + bias."""
        s = self.lm_gate * log_odds.float() + self.bias
        if self.cfg.has_prior and prior is not None:
            from modelsat.routers.modelsat.prior import PRIOR_FLOOR
            p = prior.float().clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR)
            s = s + self.prior_scale * torch.log(p / (1 - p))
        return s

    # ---- scoring ------------------------------------------------------------------------------------------
    def score_pairs(self, instructions: Sequence[str], caps: Sequence, priors: torch.Tensor | None) -> torch.Tensor:
        """(B,) scores of B (instruction, capability) pairs, each its own sequence (either order)."""
        pl = [None] * len(instructions) if priors is None else priors.tolist()
        rows = [self._sequence(x, c, p) for x, c, p in zip(instructions, caps, pl)]
        emb, mask, lens = self._pad(rows)
        h = self.lm.model(inputs_embeds=emb, attention_mask=mask, use_cache=False).last_hidden_state
        last = h[torch.arange(len(rows), device=h.device), lens - 1]
        return self.combine(self._log_odds(last), priors)

    def score_shared(self, instruction: str, caps: Sequence, priors: torch.Tensor | None) -> torch.Tensor:
        """(B,) scores of one instruction with B capabilities (see `score_packed`)."""
        if self.cfg.order == "paper":
            return self.score_pairs([instruction] * len(caps), caps, priors)
        return self.score_packed([instruction], caps, None if priors is None else priors[None])[0]

    def score_packed(self, instructions: Sequence[str], caps: Sequence, priors: torch.Tensor | None) -> torch.Tensor:
        """(n, B) scores of n instructions with the same B capabilities, fast orders, in ONE forward of the packed
        sequence [head, prefix_1, suffix_1,1 .. suffix_1,B, prefix_2, ...]. The block mask lets each suffix see
        the head, its own instruction's prefix and itself only, and positions continue the prefix in every block:
        the scores of n·B separate sequences, but φ's weights are read once (on a CPU a forward of few tokens
        costs about as much as reading the weights, so one pass per instruction, or a second pass for the
        suffixes, would cost nearly a whole forward each). The head (prompt-first order only) is the same for
        every request: without gradients its keys/values come from `_head_kv`, computed once. `priors`: (n, B)
        or None."""
        dev = self.device
        head_ids = self._head_ids()
        n_head = len(head_ids)
        cached = n_head > 0 and not torch.is_grad_enabled()
        pieces = [] if cached or not n_head else [self._embed(head_ids)]
        positions = [] if cached else list(range(n_head))
        last, blocks = [], []    # blocks: (start, length, attends-to-prefix), in columns after the head
        start = n_head
        for i, x in enumerate(instructions):
            prefix = self._embed(self._prefix_ids(x))
            n_pre = prefix.shape[0]
            pieces.append(prefix)
            positions.extend(range(n_head, n_head + n_pre))
            blocks.append((start, n_pre, None))
            pre_start = start
            start += n_pre
            for j, c in enumerate(caps):
                suf = self._suffix(c, None if priors is None else float(priors[i, j]))
                k = suf.shape[0]
                pieces.append(suf)
                positions.extend(range(n_head + n_pre, n_head + n_pre + k))
                blocks.append((start, k, (pre_start, n_pre)))
                start += k
                last.append(start - 1)
        total = start
        mask = torch.zeros(total, total, dtype=torch.bool, device=dev)
        mask[:, :n_head] = True
        mask[:n_head, :n_head] = torch.tril(torch.ones(n_head, n_head, dtype=torch.bool, device=dev))
        for b0, k, pre in blocks:
            mask[b0:b0 + k, b0:b0 + k] = torch.tril(torch.ones(k, k, dtype=torch.bool, device=dev))
            if pre is not None:
                mask[b0:b0 + k, pre[0]:pre[0] + pre[1]] = True
        past = {}
        if cached:                # the head's rows are not computed; its columns are its cached keys/values
            from transformers import DynamicCache
            mask, last = mask[n_head:], [t - n_head for t in last]
            past = {cache_kwarg(type(self.lm.model)): DynamicCache(ddp_cache_data=self._head_kv(head_ids))}
        seq = torch.cat(pieces)[None]
        h = self.lm.model(inputs_embeds=seq, attention_mask=mask[None, None], **past,
                          position_ids=torch.tensor([positions], device=dev), use_cache=cached).last_hidden_state
        scores = self.combine(self._log_odds(h[0, last]), None if priors is None else priors.reshape(-1))
        return scores.view(len(instructions), len(caps))

    def _head_kv(self, head_ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """φ's per-layer keys/values of the head, computed once and kept while φ's weights stay the same (the key
        holds each weight's in-place version counter, so merging LoRA, loading a state or an optimizer step all
        make it stale)."""
        key = (tuple(head_ids), sum(p._version for p in self.lm.parameters()), self.device, self.lm.dtype)
        if self._head_kv_cache is None or self._head_kv_cache[0] != key:
            with torch.no_grad():
                out = self.lm.model(inputs_embeds=self._embed(head_ids)[None], use_cache=True)
            kv = [(layer.keys, layer.values) for layer in output_cache(out).layers]
            self._head_kv_cache = (key, kv)
        return self._head_kv_cache[1]

    @torch.no_grad()
    def score_matrix(self, instructions: Sequence[str], candidates: Sequence[Profile], priors: np.ndarray | None,
                     batch: int = 64) -> np.ndarray:
        """(n, m) scores of every instruction with every candidate."""
        was_training = self.training
        if was_training:
            self.eval()
        self._merge_lora(True)
        out = np.zeros((len(instructions), len(candidates)))
        caps = [self._cached_capability(c) for c in candidates]
        for s in range(0, len(caps), batch):
            sl = slice(s, s + batch)
            if self.cfg.order == "paper":
                for i, x in enumerate(instructions):
                    p = None if priors is None else torch.as_tensor(priors[i, sl], dtype=torch.float32,
                                                                     device=self.device)
                    out[i, sl] += self.score_shared(x, caps[sl], p).double().cpu().numpy()
                continue
            # pack as many instructions per forward as keep the sequence near `pack_tokens`
            per_instr = max(1, self.pack_tokens // (self.cfg.max_instruction_tokens + 40
                                                    + len(caps[sl]) * max(1, int(caps[0].shape[0]) + 8)))
            for i0 in range(0, len(instructions), per_instr):
                rows = slice(i0, i0 + per_instr)
                p = None if priors is None else torch.as_tensor(priors[rows, sl], dtype=torch.float32,
                                                                 device=self.device)
                out[rows, sl] += self.score_packed(instructions[rows], caps[sl], p).double().cpu().numpy()
        if was_training:
            self.train(True)
        return out

    def _cached_capability(self, profile: Profile) -> torch.Tensor:
        """capability_input, memoised by the profile's content while the weights stay fixed (inference)."""
        key = profile_key(profile)
        cap = self._cap_cache.get(key)
        if cap is None:
            cap = self.capability_input(profile)
            if len(self._cap_cache) < 10_000:
                self._cap_cache[key] = cap
        return cap
