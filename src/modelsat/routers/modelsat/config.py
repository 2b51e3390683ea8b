"""Configuration of the Model-SAT router: what the model is (ModelConfig) and how it is trained (TrainConfig).

Every knob lives here, visible in one place (nanoGPT style); presets are YAML files in `configs/` with the
two sections `model:` and `train:`. Unknown keys are errors, so a typo in a preset never passes silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from modelsat.errors import ModelsatError

INQUIRY_PROMPT = "Predict whether the model can handle the instruction by indicating 'Yes' or 'No'."


# What is built in (every shipped preset set it, or no preset ever moved it): the prior is fitted on the training
# records with κ from the profiles and the task classifier's C chosen on validation items from C_GRID; both
# neighbour searches read MiniLM; one profile token carries the profile's accuracy vector and the prior as a
# number (none with `prior: none`, the paper's reading); the prior is not stated in the text; LoRA r 8, α 16 on
# q_proj and v_proj; `tuning: full` also trains ψ; a linear connector; model-contrastive groups hold every
# training model with a result on the instruction. Options measured and left off, and the keys they had, are in
# docs/experiments/removed-options.md with the last commit that had each.
PRIOR_C_GRID = (1.0, 10.0, 100.0)
DIAGNOSTIC_ITEMS = 60      # validation items `modelsat train` scores against every training model afterwards
REMOVED_OPTIONS_DOC = "docs/experiments/removed-options.md"
PRIORS = ("fitted", "profile", "mean", "none")
OBJECTIVES = ("modelsat", "paper")


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
    tuning: str = "lora"             # what stage 2 trains: "lora" (adapters on φ), "full" (all of φ and ψ, the
    #                                  paper's stage 2) or "none" (connector only)
    prior: str = "fitted"            # the explicit prior: score = gate·LM log-odds + scale·logit(prior) + bias, and
    #                                  one profile token carrying the profile's accuracies and the prior.
    #                                  "fitted": the profile-prior router fitted on the training records
    #                                  (temperature, κ from the profiles, a task classifier whose C is chosen on
    #                                  validation items, so tasks beyond MMLU count); "profile": the shipped
    #                                  subject map read as is (nothing fitted); "mean": each profile's mean
    #                                  accuracy (tests); "none": no prior and no profile token (the paper's reading)
    prior_records: bool = False      # update the prior of each candidate the router holds records of by its results
    #                                  on the training items nearest the instruction (a Beta update, k and its
    #                                  weight chosen by leave-one-out likelihood; routers/modelsat/records_prior.py);
    #                                  a candidate known only by its profile keeps the profile prior
    prior_records_training: bool = True  # prior_records: the LM also trains on the updated prior (each item's
    #                                  neighbours leave it out); false: training reads the profile prior, only
    #                                  scoring reads the update, so what the LM learns is as without it
    prior_records_bits: int = 32     # prior_records: how the training items' features are kept: 32 (float32), or
    #                                  8 or 4 bits a value, each row rounded to its own scale when fitted (the
    #                                  neighbours are found on the rounded rows, so a saved router scores as the
    #                                  fitted one) and its results in float16; 4 bits keep 95 % of the nearest
    #                                  at an eighth of the size, for a router that ships
    lm_center_items: int = 0         # > 0: subtract from each candidate's LM term its mean over this many training
    #                                  instructions (kept in the router), so the LM only reorders a candidate
    #                                  between instructions and its overall level comes from the prior alone:
    #                                  an offset learned for a training model's identity cannot favour it over
    #                                  a new model known by its profile only (0 = the LM term as trained)
    max_instruction_tokens: int = 96
    max_capability_tokens: int = 256  # per ψ chunk (no-encoder variant: for the whole capability text)

    @property
    def has_prior(self) -> bool:
        return self.prior != "none"

    @property
    def profile_tokens(self) -> int:
        """Soft tokens read from the profile's accuracy vector (57 MMLU subjects in a fixed order) by a linear
        layer, with the prior as a number added: one with a prior, none without (the paper's reading)."""
        return 1 if self.has_prior else 0

    @property
    def train_encoder(self) -> bool:
        """Stage 2 also trains ψ with `tuning: full` (otherwise ψ's outputs are cached)."""
        return self.tuning == "full"

    def __post_init__(self):
        if self.prior is False:                       # YAML `prior: false`, as the paper preset wrote it
            self.prior = "none"
        if not isinstance(self.prior, str):
            raise ModelsatError(f"model.prior is the explicit prior's source, one of {', '.join(PRIORS)}; got "
                                f"{self.prior!r} (`prior: true` with `prior_source: X` is now `prior: X`)")
        _choice("model.prior", self.prior, PRIORS)
        _choice("model.order", self.order, ("fast", "paper", "fastest", "prompt-first"))
        _choice("model.tuning", self.tuning, ("lora", "full", "none"))
        if self.lm == "none" and not self.has_prior:
            raise ModelsatError("model.lm: none needs prior: fitted, profile or mean (with no learned correction the "
                                "router is its prior)")
        if self.prior_records and not self.has_prior:
            raise ModelsatError("model.prior_records needs a prior (it updates the prior)")
        if self.prior_records_bits not in (32, 8, 4):
            raise ModelsatError(f"model.prior_records_bits must be 32, 8 or 4, got {self.prior_records_bits}")
        if self.lm_center_items < 0:
            raise ModelsatError(f"model.lm_center_items must be >= 0, got {self.lm_center_items}")
        if self.lm_center_items and not self.has_prior:
            raise ModelsatError("model.lm_center_items needs a prior (centred, the LM term has no level of its "
                                "own; the prior gives it)")
        if self.n_soft_tokens < 1:
            raise ModelsatError(f"model.n_soft_tokens must be >= 1, got {self.n_soft_tokens}")


@dataclass
class TrainConfig:
    """The recipe: which groups, which loss, how many steps of which stage, at which learning rates."""

    seed: int = 0
    objective: str = "modelsat"      # "modelsat": 3 of 4 groups are model-contrastive (one instruction, every
    #                                  training model with a result on it, one packed forward), the rest the
    #                                  paper's item-contrastive groups; loss eq. 5 + 0.5 · BCE.
    #                                  "paper": item-contrastive groups only (one model, 1 item it answered, k−1
    #                                  it failed), loss eq. 5 (the paper's "Tuning Recipe")
    group_size: int = 4              # k: 1 positive + k−1 negatives per item-contrastive group
    groups_per_step: int = 2         # per optimizer step, over all processes (each takes every Nth group)
    stage1_steps: int = 60           # connector (+ gate, prior scale) only
    stage2_steps: int = 120          # + LoRA / all of φ and ψ (tuning), larger learning rate on W (and ψ)
    lr_connector: float = 1e-3
    lr_lm: float = 2e-4
    average_last: float = 0.0        # > 0: the router keeps the mean of the trained state over the last this share
    #                                  of stage 2's steps (Polyak / SWA-style tail averaging), not the last step's
    #                                  state; with 2 groups a step, one step's noise moves a zoo by points
    max_train_items: int | None = None
    device: str = "auto"             # where training runs (Hugging Face Accelerate): "auto" (a GPU when there is one,
                                     # else the CPU), "cpu" or "cuda"; under `accelerate launch` / `torchrun` each
                                     # process takes its own GPU (or CPU process) and they share every step's groups
    mixed_precision: str = "no"      # "no", "bf16" (GPU or CPU autocast; fp32 master weights) or "fp16" (GPU only,
                                     # with loss scaling)

    def __post_init__(self):
        _choice("train.objective", self.objective, OBJECTIVES)
        _choice("train.device", self.device, ("auto", "cpu", "cuda"))
        _choice("train.mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        if self.mixed_precision == "fp16" and self.device == "cpu":
            raise ModelsatError("train.mixed_precision: fp16 needs a GPU (its loss scaling has no CPU kernels); "
                                "use bf16 on a CPU")
        if self.group_size < 2:
            raise ModelsatError(f"train.group_size must be >= 2, got {self.group_size}")
        if not 0.0 <= self.average_last <= 1.0:
            raise ModelsatError(f"train.average_last must be in [0, 1], got {self.average_last}")

    @property
    def model_contrastive_frac(self) -> float:
        """Share of model-contrastive groups (the rest are the paper's item-contrastive groups)."""
        return 0.75 if self.objective == "modelsat" else 0.0

    @property
    def loss(self) -> str:
        """"group+bce" (eq. 5 + BCE_WEIGHT · pointwise BCE) or "group" (eq. 5 alone, the paper's)."""
        return "group+bce" if self.objective == "modelsat" else "group"

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


# Keys a preset could set before the configuration was cut to the knobs that earn their place: where each went.
BUILT_IN = "now built in"
REMOVED_KEYS: dict[str, str] = {
    **{k: "an option measured and left off" for k in (
        "merge_capability", "prior_learn_steps", "prior_select", "prior_records_features", "prior_records_category",
        "prior_records_balanced", "prior_records_gate", "prior_records_residual", "gate_select", "gate_sets",
        "level_guard", "capability_reads", "perturbations", "prior_features")},
    "prior_source": "now `prior: fitted | profile | mean | none`",
    "profile_tokens": "one profile token with a prior, none with `prior: none`",
    "prior_token": BUILT_IN + " (the profile token carries the prior)",
    "prior_in_text": BUILT_IN + " (off)",
    "prior_kappa_fit": BUILT_IN + " (profiles)",
    "prior_task_C_grid": BUILT_IN + " ([1, 10, 100])",
    "train_encoder": "`tuning: full` trains ψ too",
    "connector": BUILT_IN + " (linear)",
    **{k: BUILT_IN for k in ("lora_r", "lora_alpha", "lora_targets", "lm_gate_init", "inquiry_prompt", "dtype",
                             "tiny_hidden", "tiny_layers", "tiny_init_range", "bce_weight", "strong_model_weight",
                             "distinguishing_weight", "weight_decay", "max_grad_norm", "checkpoint_every",
                             "eval_items", "eval_every", "log_every")},
    "threads": "torch's own thread count (set OMP_NUM_THREADS to change it)",
    "model_group": BUILT_IN + " (all)",
    "model_contrastive_frac": "now `train.objective: modelsat` (0.75) or `paper` (0)",
    "loss": "now `train.objective: modelsat` (group+bce) or `paper` (group)",
}


def _build(klass, values: dict, where: str):
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = set(values) - names
    removed = sorted(k for k in unknown if k in REMOVED_KEYS)
    if removed:
        said = "; ".join(f"{k}: {REMOVED_KEYS[k]}" for k in removed)
        raise ModelsatError(f"{where}: key(s) {removed} were removed from the configuration ({said}). Delete them "
                            f"from the preset; {REMOVED_OPTIONS_DOC} names the last commit that had each")
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
    """A seconds-fast configuration for tests: a random 2-layer LM (hidden 64; model.TINY_*) and no encoder by
    default, reading each profile's mean accuracy as its prior."""
    model = ModelConfig(lm="tiny", lm_layers=None, encoder="none", n_soft_tokens=2, max_instruction_tokens=32,
                        max_capability_tokens=64, tuning="full", prior="mean")
    model = dataclasses.replace(model, **model_overrides)
    train = TrainConfig(group_size=3, groups_per_step=2, stage1_steps=0, stage2_steps=4, lr_connector=3e-3,
                        lr_lm=3e-3)
    return Preset(model=model, train=train, name="tiny")
