"""The hyperparameter table itself: every hyperparameter a training run accepts, one row each (see
`schema` for the fields of a row), and the lookups derived from it. Knows nothing of Django.

Contract: `TABLE` is ordered (the form's and the docs' order within a group); `BY_NAME` maps a name to
its row and `TOGETHER_NAMES` every name a Together run may use (Together field, table name, aliases) to
its row; `applicable(method, backend)` lists the rows a run uses; `grouped(rows)` groups rows in GROUPS
order; `applies_checked(row, method, backend)` says whether a given value of the row is validated."""
from __future__ import annotations

from typing import Any

from workers.engine.grow.plan import NEXT as GROW_NEXT
from workers.engine.hyperparameters.schema import (
    BACKENDS,
    CONTINUE_LR_FACTOR,
    GROUPS,
    LR_SCHEDULERS,
    METHODS,
    Bounds,
    Hyperparameter,
    Together,
)
from workers.engine.rewards import PRESETS as REWARD_PRESETS
from workers.engine.tiny import NAMED_SIZES

DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge")  # TRL DPOConfig.loss_type values offered


def _join_modules(value: Any) -> str:
    return ",".join(str(m) for m in value) if isinstance(value, (list, tuple)) else value


def _int_if_whole(value: float) -> float | int:
    return int(value) if value == int(value) else value


TABLE: tuple[Hyperparameter, ...] = (
    # -- basics
    Hyperparameter(
        "max_steps", "int", "Max steps", "Optimizer steps to train; 0 trains for the given epochs instead.", "basics",
        default=0, bounds=Bounds(0, 1_000_000)),
    Hyperparameter(
        "epochs", "float", "Epochs", "Passes over the training split (fractions allowed locally).", "basics",
        default=1.0, bounds=Bounds(0, 1000, min_exclusive=True), backends=BACKENDS,
        together=Together("n_epochs", aliases=("num_train_epochs",), type="int", bounds=Bounds(1, 100), default=1)),
    Hyperparameter(
        "learning_rate", "float", "Learning rate",
        "Peak learning rate; the default depends on the method and is halved when continuing a model version.",
        "basics", default={"lora": 2e-4, "full": 2e-5, "scratch": 1e-3, "dpo": 5e-5, "kto": 5e-5, "grpo": 5e-5,
                            "grow": 1e-3},
        continuing_factor=CONTINUE_LR_FACTOR,
        bounds=Bounds(0, 1, min_exclusive=True), backends=BACKENDS,
        together=Together("learning_rate", default=1e-5)),
    Hyperparameter(
        "batch_size", "int", "Batch size", "Examples per device per step.", "basics",
        default=4, bounds=Bounds(1, 4096), backends=BACKENDS,
        together=Together("batch_size", aliases=("per_device_train_batch_size",), bounds=Bounds(1, None),
                          also=("max",), default="max")),
    Hyperparameter(
        "max_seq_len", "int", "Max sequence length",
        "Tokens per example; longer examples are refused unless truncation is accepted. At most the base "
        "model's context length.", "basics",
        default=512, bounds=Bounds(16, 1_048_576), model_limit="context_length",
        limit_message="max_seq_len ({value}) exceeds the model's context length ({limit})."),
    # -- optimizer
    Hyperparameter(
        "grad_accum", "int", "Gradient accumulation", "Steps whose gradients add up before each update.",
        "optimizer", default=1, bounds=Bounds(1, 4096)),
    Hyperparameter(
        "lr_scheduler", "choice", "LR scheduler", "How the learning rate moves after warmup.", "optimizer",
        default="cosine", choices=LR_SCHEDULERS, invalid="Choose one of {choices}."),
    Hyperparameter(
        "warmup_ratio", "float", "Warmup ratio", "Share of the steps spent warming the learning rate up.",
        "optimizer", default=0.03, bounds=Bounds(0, 0.5), backends=BACKENDS,
        together=Together("warmup_ratio", bounds=Bounds(0, 1))),
    Hyperparameter(
        "weight_decay", "float", "Weight decay", "AdamW weight decay.", "optimizer",
        default=0.0, bounds=Bounds(0, 1), backends=BACKENDS,
        together=Together("weight_decay", bounds=Bounds(0, None))),
    Hyperparameter(
        "max_grad_norm", "float", "Max gradient norm", "Gradients are clipped to this norm.", "optimizer",
        default=1.0, bounds=Bounds(0, 1000, min_exclusive=True), backends=BACKENDS,
        together=Together("max_grad_norm", bounds=Bounds(0, None))),
    # -- LoRA
    Hyperparameter(
        "lora_r", "int", "LoRA rank (r)", "Rank of the adapter matrices; at most the model's hidden size.", "lora",
        default=8, methods=("lora", "dpo", "kto", "grpo"), bounds=Bounds(1, 4096), backends=BACKENDS,
        model_limit="hidden_size",
        limit_message="lora_r ({value}) cannot exceed the model's hidden size ({limit}).",
        together=Together("lora_r", section="training_type", bounds=Bounds(1, None), default=8)),
    Hyperparameter(
        "lora_alpha", "int", "LoRA alpha", "Adapter scaling (alpha / r).", "lora",
        default=16, methods=("lora", "dpo", "kto", "grpo"), bounds=Bounds(1, 65536), backends=BACKENDS,
        together=Together("lora_alpha", section="training_type", type="float",
                          bounds=Bounds(0, None, min_exclusive=True),
                          default=lambda section: 2 * section.get("lora_r", 8), transform=_int_if_whole)),
    Hyperparameter(
        "lora_dropout", "float", "LoRA dropout", "Dropout on the adapter's input.", "lora",
        default=0.05, methods=("lora",), bounds=Bounds(0, 0.9), backends=BACKENDS,  # DPO runs without dropout
        together=Together("lora_dropout", section="training_type", bounds=Bounds(0, 1, max_exclusive=True),
                          default=0.0)),
    Hyperparameter(
        "target_modules", "modules", "LoRA target modules",
        "Modules that get adapters: all-linear, or names separated by commas (q_proj,v_proj).", "lora",
        default="all-linear", methods=("lora", "dpo", "kto", "grpo"), backends=BACKENDS,
        invalid="A comma-separated string or a list of module names.", example="q_proj,v_proj",
        together=Together("lora_trainable_modules", section="training_type", aliases=("lora_target_modules",),
                          default="all-linear", transform=_join_modules)),
    # -- preference training (DPO, on TRL's DPOTrainer)
    Hyperparameter(
        "beta", "float", "Beta (DPO, KTO, GRPO)",
        "How far the trained model may move from the reference: higher keeps it closer. The rewards are "
        "beta × log(policy / reference) of each answer; for GRPO, the weight of the KL penalty.", "preference",
        default={"dpo": 0.1, "kto": 0.1, "grpo": 0.04}, methods=("dpo", "kto", "grpo"),
        bounds=Bounds(0, 100, min_exclusive=True), backends=BACKENDS,
        together=Together("dpo_beta", section="training_method", default=0.1)),
    Hyperparameter(
        "loss_type", "choice", "Preference loss",
        "sigmoid: DPO; ipo: IPO (squared, length-normalised; beta is its regulariser); hinge: SLiC.", "preference",
        default="sigmoid", methods=("dpo",), choices=DPO_LOSS_TYPES, invalid="Choose one of {choices}."),
    Hyperparameter(  # KTO (TRL's KTOTrainer): each pair gives a desirable and an undesirable answer
        "desirable_weight", "float", "KTO desirable weight",
        "Weight of the loss on desirable (chosen) answers; with as many desirable as undesirable answers, "
        "keep both weights at 1.", "preference",
        default=1.0, methods=("kto",), bounds=Bounds(0, 100, min_exclusive=True)),
    Hyperparameter(
        "undesirable_weight", "float", "KTO undesirable weight",
        "Weight of the loss on undesirable (rejected) answers.", "preference",
        default=1.0, methods=("kto",), bounds=Bounds(0, 100, min_exclusive=True)),
    # -- reward-based RL (GRPO, on TRL's GRPOTrainer): the reward components come from workers/engine/rewards
    Hyperparameter(
        "reward_preset", "choice", "Reward preset",
        "Named weights of the reward components (the registry's presets), used when reward_weights is empty.",
        "rewards", default="arithmetic", methods=("grpo",), choices=tuple(REWARD_PRESETS),
        invalid="Unknown preset; choose one of {choices}."),
    Hyperparameter(
        "reward_weights", "weights", "Reward weights",
        "Weight per reward component, e.g. answer_match=0.9, length=0.1 (normalised to sum 1); empty: the "
        "preset's. At least one weighted component must verify the tasks (answer_match needs meta.answer, "
        "tests_pass meta.tests).", "rewards",
        default={"grpo": {}}, methods=("grpo",), example={"answer_match": 1.0},
        invalid='An object of component name → weight, e.g. {"answer_match": 0.9, "length": 0.1}, or '
                '"answer_match=0.9, length=0.1".'),
    Hyperparameter(
        "num_generations", "int", "Completions per prompt",
        "Answers sampled per task; each is rewarded against the group's mean. batch_size × grad_accum must be a "
        "multiple of it.", "rewards",
        default=4, methods=("grpo",), bounds=Bounds(2, 256)),
    Hyperparameter(
        "max_completion_length", "int", "Max completion length",
        "Longest sampled answer, in tokens; the prompt plus this must fit in max_seq_len.", "rewards",
        default=64, methods=("grpo",), bounds=Bounds(1, 32768)),
    Hyperparameter(
        "temperature", "float", "Sampling temperature",
        "Temperature of the sampled answers: higher explores more.", "rewards",
        default=1.0, methods=("grpo",), bounds=Bounds(0, 10, min_exclusive=True)),
    Hyperparameter(
        "full_weights", "bool", "Full weights",
        "Train every weight instead of a LoRA adapter (the LoRA settings are then not used; DPO and KTO keep a "
        "frozen copy of the starting model as their reference).", "lora",
        default=False, methods=("grpo", "dpo", "kto")),
    # -- from scratch
    Hyperparameter(
        "size", "choice", "Model size", "Named size of the new model (see the table of sizes).", "scratch",
        default="nano", methods=("scratch",), choices=tuple(NAMED_SIZES),
        invalid="Unknown size; choose one of {choices}."),
    Hyperparameter(
        "vocab_size", "int", "Vocabulary size", "Tokens in the BPE vocabulary trained on the dataset.", "scratch",
        default=2000, methods=("scratch",), bounds=Bounds(300, 262_144)),
    # -- grow (workers/engine/grow: function-preserving expansion of a from-scratch version, then training)
    Hyperparameter(
        "target_size", "size", "Grow into",
        "The larger size to grow the parent version into: a named size (next: the smallest one it can grow "
        "into), or the dims as an object {hidden_size, num_hidden_layers, intermediate_size, "
        "num_attention_heads, num_key_value_heads, head_dim} (missing ones keep the parent's). hidden_size and "
        "the head size must be whole multiples of the parent's.", "grow",
        default="next", methods=("grow",), choices=(GROW_NEXT, *NAMED_SIZES), example="micro",
        invalid="Unknown size; choose one of {choices}, or give the dims as an object."),
    Hyperparameter(
        "grow_noise", "float", "Symmetry-breaking noise",
        "Noise (relative to each weight's spread) that makes the copied units differ; it cancels across the "
        "copies, so the function is kept. 0: the copies stay identical while training.", "grow",
        default=0.05, methods=("grow",), bounds=Bounds(0, 1)),
    # -- evaluation
    Hyperparameter(
        "eval_steps", "int", "Evaluate every N steps",
        "Validation loss interval; 0 evaluates at every checkpoint.", "evaluation",
        default=0, bounds=Bounds(0, 1_000_000)),
    Hyperparameter(
        "eval_prompts", "prompts", "Evaluation prompts",
        "Prompts answered by the base and the trained model after training, one per line (at most 10).",
        "evaluation", default=[], max_items=10, invalid="A list of prompt strings.", example=["Say hello."]),
    Hyperparameter(
        "eval_max_new_tokens", "int", "Evaluation answer tokens", "Longest answer generated per prompt.",
        "evaluation", default=48, bounds=Bounds(1, 1024)),
    # -- checkpoints and advanced
    Hyperparameter(
        "save_steps", "int", "Checkpoint every N steps", "Steps between checkpoints.", "advanced",
        default=50, bounds=Bounds(1, 1_000_000)),
    Hyperparameter(
        "save_total_limit", "int", "Keep last K checkpoints", "Older checkpoints are deleted.", "advanced",
        default=2, bounds=Bounds(1, 100)),
    Hyperparameter(
        "n_checkpoints", "int", "Checkpoints (Together)", "Checkpoints Together keeps during the job.", "advanced",
        backends=("together",), bounds=Bounds(1, None), example=2, together=Together("n_checkpoints")),
    Hyperparameter(
        "seed", "int", "Seed", "Random seed (data order, initialisation, dropout).", "advanced",
        default=42, bounds=Bounds(0, 2**31 - 1)),
    Hyperparameter(
        "gradient_checkpointing", "bool", "Gradient checkpointing",
        "Recompute activations in the backward pass: less memory, slower steps.", "advanced", default=False),
    Hyperparameter(
        "checkpoint_layers", "float", "Checkpointed layers (share)",
        "Share of the decoder layers, spread through the stack, whose activations are recomputed in the backward "
        "pass (0 none, 1 all = gradient_checkpointing). Each one gives back its activation memory for one more "
        "forward of that layer. The default for lora and full (two thirds) keeps peak memory under TRL's "
        "SFTTrainer with its gradient checkpointing while training ~1.6x as fast (bench/README.md).", "advanced",
        default={"lora": 0.67, "full": 0.67, "scratch": 0.0, "grow": 0.0}, bounds=Bounds(0, 1),
        methods=("lora", "full", "scratch", "grow")),
    Hyperparameter(
        "gpus", "int", "GPUs", "Devices for one run (torchrun, DistributedDataParallel).", "advanced",
        default=1, bounds=Bounds(1, 64)),
    Hyperparameter(
        "suffix", "str", "Model name suffix", "Added to the name of the model Together makes.", "advanced",
        backends=("together",), pattern=r"[A-Za-z0-9._-]{1,40}", example="support-bot",
        invalid="Suffix: up to 40 letters, digits, dots, dashes or underscores.", together=Together("suffix")),
    Hyperparameter(
        "model", "str", "Together model", "The Together model to fine-tune (the run's remote model).", "basics",
        backends=("together",), in_form=False, example="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        invalid="Name the Together model to fine-tune, e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference.",
        together=Together("model", aliases=("together_model", "remote_model"),
                          required="Name the Together model to fine-tune, e.g. "
                                   "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference.")),
)
BY_NAME: dict[str, Hyperparameter] = {spec.name: spec for spec in TABLE}
# every name a Together run may use for a row: {alias: row}
TOGETHER_NAMES: dict[str, Hyperparameter] = {
    name: spec for spec in TABLE if spec.together
    for name in (spec.together.field, spec.name, *spec.together.aliases)}


def applies_checked(spec: Hyperparameter, method: str, backend: str) -> bool:
    """Whether a given value of the row is validated: the rows the method uses on the backend (with an
    unknown method, which is an error of its own, every row of the backend, so all mistakes show at once)."""
    if method not in METHODS:
        return backend in spec.backends
    return spec.applies(method, backend)


def applicable(method: str, backend: str = "local") -> list[Hyperparameter]:
    return [spec for spec in TABLE if spec.applies(method, backend)]


def grouped(specs=TABLE) -> list[tuple[str, str, list[Hyperparameter]]]:
    """[(group key, title, rows)] in GROUPS order, without empty groups."""
    out = []
    for key, title in GROUPS:
        rows = [s for s in specs if s.group == key]
        if rows:
            out.append((key, title, rows))
    return out
