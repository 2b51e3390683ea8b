"""Configuration of the Model-SAT router: what the model is (ModelConfig) and how it is trained (TrainConfig).

Every knob lives here, visible in one place (nanoGPT style); presets are YAML files in `configs/` with the
two sections `model:` and `train:`. Unknown keys are errors, so a typo in a preset never passes silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from modelsat.errors import ModelsatError

INQUIRY_PROMPT = "Predict whether the model can handle the instruction by indicating 'Yes' or 'No'."


@dataclass
class ModelConfig:
    """The architecture: capability encoder ψ → connector W → soft tokens, read with the instruction by the LM φ."""

    lm: str = "smollm2"              # "smollm2" (PyPI package), "tiny" (random LlamaConfig, tests), a local HF folder,
    #                                  or "none": no learned correction, the router is its explicit prior (no
    #                                  gradient steps: the same scores on every machine)
    lm_layers: int | None = 12       # keep only the first n layers of φ (None = all)
    encoder: str = "minilm"          # "minilm" (PyPI package), "tiny" (random BERT, tests), a local HF folder,
    #                                  or "none": φ reads the capability text as plain tokens (paper's ablation)
    order: str = "fast"              # "fast" = [instruction, capability, prompt] (instruction KV shared by candidates)
    #                                  "paper" = [capability, instruction, prompt] (eq. 3)
    #                                  "fastest" = [instruction, prompt, capability]: instruction and prompt shared,
    #                                  each candidate adds only its soft tokens (the score is read at the last one)
    #                                  "prompt-first" = [prompt, instruction, capability]: as fastest, and the
    #                                  prompt's keys/values are computed once per process, not once per request
    n_soft_tokens: int = 4           # the capability text is cut into this many chunks of subjects, one ψ vector each
    profile_tokens: int = 1          # soft tokens read from the profile's accuracy vector as numbers (57 MMLU subjects
    #                                  in a fixed order) by a linear layer: text embeddings barely see "85%" vs "40%"
    merge_capability: bool = False   # add the profile token and the n_soft_tokens W·ψ vectors into ONE soft token
    #                                  per candidate (needs profile_tokens: 1 and an encoder): a candidate costs φ
    #                                  one token instead of 1 + n_soft_tokens (routing latency; ψ still reads the
    #                                  capability text in n_soft_tokens chunks)
    connector: str = "linear"        # "linear" (the paper's single layer) or "mlp" (linear-GELU-linear)
    tuning: str = "lora"             # what stage 2 trains in φ: "lora", "full" or "none" (connector only)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    train_encoder: bool = False      # stage 2 also trains ψ (otherwise its outputs are cached)
    prior: bool = True               # add the profile prior: score = gate·LM log-odds + scale·logit(prior) + bias
    prior_source: str = "profile"    # "profile" (instruction → subjects → profile accuracy, shipped map),
    #                                  "fitted" (the profile-prior router fitted on the training records: its
    #                                  temperature, kappa and task classifier, so tasks beyond MMLU count), "mean"
    prior_features: str = "minilm"   # the subject map the prior reads: "minilm" (centroid on MiniLM embeddings:
    #                                  one encoder forward per instruction) or "static" (linear on static
    #                                  features: no encoder, faster, but a weaker prior on MMLU-Pro's
    #                                  high-performance zoo; see routers/subject_map.py)
    prior_learn_steps: int = 0       # prior_source "fitted": > 0 also learns how to read the profiles from the
    #                                  training records (ProfilePrior learn_steps; routers/_prior_learning.py)
    prior_select: str = "likelihood"  # prior_source "fitted": kappa and per-task readings by the likelihood of the
    #                                  training records, or "routing": by routed accuracy on validation items
    prior_kappa_fit: str = "likelihood"  # prior_source "fitted": kappa by the "likelihood" of the training records,
    #                                  or from the "profiles" alone (empirical Bayes; routers/profile_prior.py), or
    #                                  the same estimate from each call's "candidates"
    prior_task_C_grid: list[float] | None = None  # prior_source "fitted": the task classifier's C, chosen from
    #                                  this grid by its accuracy on validation items (None: C = 1)
    prior_records: bool = False      # update the prior of each candidate the router holds records of by its results
    #                                  on the training items nearest the instruction (a Beta update, k and its
    #                                  weight chosen by leave-one-out likelihood; routers/modelsat/records_prior.py);
    #                                  a candidate known only by its profile keeps the profile prior
    prior_records_training: bool = True  # prior_records: the LM also trains on the updated prior (each item's
    #                                  neighbours leave it out); false: training reads the profile prior, only
    #                                  scoring reads the update, so what the LM learns is as without it
    prior_records_features: str = "minilm"  # prior_records: the features the neighbours are found on: "minilm"
    #                                  (MiniLM embeddings: one encoder forward per instruction) or "static" (the
    #                                  mean of MiniLM's input token vectors, centred on the training items: no
    #                                  encoder, for a router that reads the static subject map for latency)
    prior_records_bits: int = 32     # prior_records: how the training items' features are kept: 32 (float32), or
    #                                  8 or 4 bits a value, each row rounded to its own scale when fitted (the
    #                                  neighbours are found on the rounded rows, so a saved router scores as the
    #                                  fitted one) and its results in float16; 4 bits keep 95 % of the nearest
    #                                  (scripts/records_prior_bits.py) at an eighth of the size, for a router that ships
    prior_records_category: bool = False  # prior_records: first update the prior by the candidate's results on
    #                                  the training items of the instruction's predicted label (category, else
    #                                  benchmark, else subject), then by the k nearest; its weight is chosen with
    #                                  k and κ (the largest means no label update)
    prior_records_balanced: bool = False  # prior_records: the items k, κ (and κc) are chosen on are drawn evenly
    #                                  from each benchmark, as the benchmark's mean over benchmarks weighs them,
    #                                  not in proportion to their sizes (one benchmark: no change)
    prior_records_gate: bool = False  # prior_records: no update unless the chosen k, κ (κc) beat no update on the
    #                                  selection items by a paired 95 % interval above zero (the best of the grid
    #                                  is partly luck; an update not shown to help only moves the prior)
    prior_records_residual: bool = False  # prior_records: the k nearest move the prior by what each neighbour's
    #                                  result was above or below the prior at that neighbour (its own profile
    #                                  prior), not by the raw result: a GSM8K neighbour of a maths-flavoured MMLU
    #                                  item then says how a model did against its GSM8K expectation, not that it
    #                                  is strong at GSM8K (p' = p + Σ(y − p_n) / (count + κ))
    gate_select: bool = False        # after training, scale the LM gate by the multiplier (0, 0.5, 1, 2) that
    #                                  routes best on validation items (0 = the prior alone)
    gate_sets: bool = False          # gate_select: judge each multiplier by its routing averaged over random
    #                                  zoo-sized sets of the training models (as level_guard does), not by
    #                                  routing among all of them at once, where the strongest models take nearly
    #                                  every item and a term that misranks the smaller models goes unseen
    level_guard: bool = False        # after training, choose on validation items a margin by which another
    #                                  candidate must outscore the one the router ranks highest on average (its
    #                                  mean score over 64 kept training instructions) to be routed to; 0 = plain
    #                                  argmax. Chosen on random zoo-sized subsets of the training models
    prior_token: bool = False        # the prior, as a number, added to the profile tokens (no extra tokens)
    capability_reads: str = "aptitude"  # what φ reads of a candidate: "aptitude" (profile tokens + W·ψ of the
    #                                  capability text) or "prior" (one token carrying the prior alone: an ablation
    #                                  where φ cannot tell models apart but by their prior, so nothing it learns is
    #                                  tied to the training models' identities; needs prior_token)
    prior_in_text: bool = True       # also state the prior in the prompt ("estimated accuracy here: 63%")
    lm_center_items: int = 0         # > 0: subtract from each candidate's LM term its mean over this many training
    #                                  instructions (kept in the router), so the LM only reorders a candidate
    #                                  between instructions and its overall level comes from the prior alone:
    #                                  an offset learned for a training model's identity cannot favour it over
    #                                  a new model known by its profile only (0 = the LM term as trained)
    lm_gate_init: float = 0.1        # the LM term starts small, so the router starts at the prior
    max_instruction_tokens: int = 96
    max_capability_tokens: int = 256  # per ψ chunk (no-encoder variant: for the whole capability text)
    perturbations: int = 0           # inference: average over this many shuffled task orders (0 = canonical only)
    inquiry_prompt: str = INQUIRY_PROMPT
    dtype: str = "float32"
    tiny_hidden: int = 64            # sizes of the random "tiny" models (tests)
    tiny_layers: int = 2
    tiny_init_range: float = 0.2     # a random 0.02-init tiny LM barely moves in a few dozen steps

    def __post_init__(self):
        _choice("order", self.order, ("fast", "paper", "fastest", "prompt-first"))
        _choice("connector", self.connector, ("linear", "mlp"))
        _choice("tuning", self.tuning, ("lora", "full", "none"))
        _choice("prior_source", self.prior_source, ("profile", "fitted", "mean"))
        _choice("prior_select", self.prior_select, ("likelihood", "routing"))
        _choice("prior_kappa_fit", self.prior_kappa_fit, ("likelihood", "profiles", "candidates"))
        from modelsat.routers.subject_map import FEATURES
        _choice("prior_features", self.prior_features, FEATURES)
        _choice("prior_records_features", self.prior_records_features, FEATURES)
        _choice("capability_reads", self.capability_reads, ("aptitude", "prior"))
        if self.capability_reads == "prior" and not (self.prior and self.prior_token and self.profile_tokens > 0):
            raise ModelsatError("model.capability_reads: prior needs prior: true, prior_token: true and "
                                "profile_tokens >= 1 (the prior is what that token carries)")
        if self.merge_capability and (self.profile_tokens != 1 or self.encoder == "none"
                                      or self.capability_reads != "aptitude"):
            raise ModelsatError("model.merge_capability needs profile_tokens: 1, an encoder and capability_reads: "
                                "aptitude (it adds the W·ψ vectors into the profile token)")
        if self.lm == "none" and not self.prior:
            raise ModelsatError("model.lm: none needs prior: true (with no learned correction the router is its prior)")
        if self.prior_records and not self.prior:
            raise ModelsatError("model.prior_records needs prior: true (it updates the prior)")
        if self.prior_records_bits not in (32, 8, 4):
            raise ModelsatError(f"model.prior_records_bits must be 32, 8 or 4, got {self.prior_records_bits}")
        if self.prior_records_category and not self.prior_records:
            raise ModelsatError("model.prior_records_category needs prior_records: true (it is a step of it)")
        if self.prior_records_balanced and not self.prior_records:
            raise ModelsatError("model.prior_records_balanced needs prior_records: true (it is how that prior chooses)")
        if self.prior_records_residual and not self.prior_records:
            raise ModelsatError("model.prior_records_residual needs prior_records: true (it is how that prior updates)")
        if self.prior_records_residual and self.prior_records_category:
            raise ModelsatError("model.prior_records_residual with prior_records_category: the label step reads raw "
                                "results, so the residuals would be taken against a prior the chain has moved; "
                                "choose one")
        if self.prior_records_gate and not self.prior_records:
            raise ModelsatError("model.prior_records_gate needs prior_records: true (it is how that prior chooses)")
        if self.gate_sets and not self.gate_select:
            raise ModelsatError("model.gate_sets needs gate_select: true (it is how that gate is chosen)")
        if self.lm_center_items < 0:
            raise ModelsatError(f"model.lm_center_items must be >= 0, got {self.lm_center_items}")
        if self.lm_center_items and not self.prior:
            raise ModelsatError("model.lm_center_items needs prior: true (centred, the LM term has no level of its "
                                "own; the prior gives it)")
        if self.n_soft_tokens < 1:
            raise ModelsatError(f"model.n_soft_tokens must be >= 1, got {self.n_soft_tokens}")


@dataclass
class TrainConfig:
    """The recipe: which groups, which loss, how many steps of which stage, at which learning rates."""

    seed: int = 0
    group_size: int = 4              # k: 1 positive + k−1 negatives per group
    groups_per_step: int = 2         # per optimizer step, over all processes (each takes every Nth group)
    model_contrastive_frac: float = 0.75   # share of groups "one instruction, k candidates"; the rest are the
    #                                        paper's item-contrastive groups "one model, k instructions"
    model_group: str = "k"           # a model-contrastive group holds "k" candidates (1 right, k−1 wrong) or "all"
    #                                  training models with a result on the instruction (one packed forward scores
    #                                  them all: every model's label for the price of about two k-groups)
    loss: str = "group+bce"          # "group" (eq. 5 cross-entropy over the group), "bce" (pointwise), or both
    bce_weight: float = 0.5
    strong_model_weight: float = 1.0  # sampling weight ∝ accuracy^this (the paper favours stronger models)
    distinguishing_weight: float = 1.0  # item weight ∝ (p(1−p))^this, p = share of models right on the item
    stage1_steps: int = 60           # connector (+ gate, prior scale) only
    stage2_steps: int = 120          # + LoRA / all of φ (tuning), larger learning rate on W (and ψ)
    lr_connector: float = 1e-3
    lr_lm: float = 2e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    average_last: float = 0.0        # > 0: the router keeps the mean of the trained state over the last this share
    #                                  of stage 2's steps (Polyak / SWA-style tail averaging), not the last step's
    #                                  state; with 2 groups a step, one step's noise moves a zoo by points
    checkpoint_every: int = 50
    eval_items: int = 40             # held-out items scored against every training model for the diagnostics
    eval_every: int = 0              # 0 = only at the end
    max_train_items: int | None = None
    threads: int | None = None       # torch threads (None = leave as is)
    log_every: int = 10
    device: str = "auto"             # where training runs (Hugging Face Accelerate): "auto" (a GPU when there is one,
                                     # else the CPU), "cpu" or "cuda"; under `accelerate launch` / `torchrun` each
                                     # process takes its own GPU (or CPU process) and they share every step's groups
    mixed_precision: str = "no"      # "no", "bf16" (GPU or CPU autocast; fp32 master weights) or "fp16" (GPU only,
                                     # with loss scaling)

    def __post_init__(self):
        _choice("loss", self.loss, ("group", "bce", "group+bce"))
        _choice("model_group", self.model_group, ("k", "all"))
        _choice("train.device", self.device, ("auto", "cpu", "cuda"))
        _choice("train.mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        if self.mixed_precision == "fp16" and self.device == "cpu":
            raise ModelsatError("train.mixed_precision: fp16 needs a GPU (its loss scaling has no CPU kernels); "
                                "use bf16 on a CPU")
        if self.group_size < 2:
            raise ModelsatError(f"train.group_size must be >= 2, got {self.group_size}")
        if not 0.0 <= self.model_contrastive_frac <= 1.0:
            raise ModelsatError(f"train.model_contrastive_frac must be in [0, 1], got {self.model_contrastive_frac}")
        if not 0.0 <= self.average_last <= 1.0:
            raise ModelsatError(f"train.average_last must be in [0, 1], got {self.average_last}")

    @property
    def total_steps(self) -> int:
        return self.stage1_steps + self.stage2_steps

    @property
    def averaged_steps(self) -> int:
        """How many of the last steps the kept state averages (average_last of stage 2; 0 = none)."""
        return int(round(self.average_last * self.stage2_steps))


@dataclass
class Preset:
    model: ModelConfig
    train: TrainConfig
    name: str = "custom"

    def to_dict(self) -> dict:
        return {"name": self.name, "model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train)}

    @classmethod
    def from_dict(cls, d: dict, source: str = "<preset>") -> "Preset":
        unknown = set(d) - {"name", "model", "train"}
        if unknown:
            raise ModelsatError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected model, train, name")
        return cls(model=_build(ModelConfig, d.get("model") or {}, f"{source}: model"),
                   train=_build(TrainConfig, d.get("train") or {}, f"{source}: train"),
                   name=str(d.get("name", Path(source).stem)))


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ModelsatError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def _build(klass, values: dict, where: str):
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = set(values) - names
    if unknown:
        raise ModelsatError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(names))}")
    return klass(**values)


def presets_dir() -> Path:
    """`configs/` of the source checkout (presets are also copied into the package data when installed)."""
    from modelsat.paths import project_root
    for d in (project_root() / "configs", Path(__file__).resolve().parents[2] / "data" / "presets"):
        if d.is_dir():
            return d
    return project_root() / "configs"


def load_preset(name_or_path: str | Path) -> Preset:
    """The preset named `name_or_path` (a file in configs/, without .yaml) or read from a YAML file."""
    import yaml
    p = Path(name_or_path)
    if not p.suffix:
        p = presets_dir() / f"{name_or_path}.yaml"
    if not p.exists():
        known = sorted(f.stem for f in presets_dir().glob("*.yaml"))
        raise ModelsatError(f"no preset {str(name_or_path)!r} (looked for {p}); known presets: {', '.join(known)}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ModelsatError(f"{p}: not valid YAML ({exc})") from exc
    return Preset.from_dict(data, source=str(p))


def tiny_preset(**model_overrides) -> Preset:
    """A seconds-fast configuration for tests: a random 2-layer LM (hidden 64) and no encoder by default."""
    model = ModelConfig(lm="tiny", lm_layers=None, encoder="none", n_soft_tokens=2, max_instruction_tokens=32,
                        max_capability_tokens=64, tuning="full", lm_gate_init=1.0, prior_source="mean")
    model = dataclasses.replace(model, **model_overrides)
    train = TrainConfig(group_size=3, groups_per_step=2, stage1_steps=0, stage2_steps=4, lr_connector=3e-3,
                        lr_lm=3e-3, eval_items=0, checkpoint_every=0, log_every=0)
    return Preset(model=model, train=train, name="tiny")
