"""The new-run form. It only parses input; run_create validates (and its field errors are mapped back)."""
from __future__ import annotations

from django import forms

from apps.training.models import TrainingRun

MAX_EXTRA_STAGES = 3

# service error field -> form field
_FIELD_MAP = {"dataset_version_id": "dataset_version", "dataset_id": "dataset_version",
              "parent_version_id": "parent_version"}


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _opt_int(**kw):
    return forms.IntegerField(required=False, **kw)


def _opt_float(**kw):
    return forms.FloatField(required=False, **kw)


class RunForm(forms.Form):
    name = forms.CharField(required=False, max_length=200)
    dataset_version = forms.TypedChoiceField(coerce=int, label="Dataset version")
    method = forms.ChoiceField(choices=TrainingRun.Method.choices, initial="lora")
    base_model = forms.ChoiceField(required=False, label="Base model")
    parent_version = forms.TypedChoiceField(coerce=int, required=False, empty_value=None,
                                            label="Continue from model version")
    backend = forms.ChoiceField(choices=TrainingRun.Backend.choices, initial="local")
    remote_model = forms.CharField(required=False, label="Remote model (Together)")
    max_steps = _opt_int(label="Max steps (0 = by epochs)")
    epochs = _opt_float()
    learning_rate = _opt_float(label="Learning rate")
    batch_size = _opt_int()
    grad_accum = _opt_int(label="Gradient accumulation")
    max_seq_len = _opt_int(label="Max sequence length")
    lora_r = _opt_int(label="LoRA r")
    lora_alpha = _opt_int(label="LoRA alpha")
    lora_dropout = _opt_float(label="LoRA dropout")
    target_modules = forms.CharField(required=False, label="LoRA target modules", initial="all-linear")
    warmup_ratio = _opt_float()
    weight_decay = _opt_float()
    lr_scheduler = forms.ChoiceField(required=False, choices=[("", "default"), ("cosine", "cosine"),
                                                              ("linear", "linear"), ("constant", "constant"),
                                                              ("constant_with_warmup", "constant with warmup")])
    gradient_checkpointing = forms.BooleanField(required=False)
    save_steps = _opt_int(label="Checkpoint every N steps")
    save_total_limit = _opt_int(label="Keep last K checkpoints")
    size = forms.ChoiceField(required=False, label="Model size (scratch)")
    vocab_size = _opt_int(label="Vocabulary size (scratch)")
    eval_prompts = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   label="Evaluation prompts (one per line)")
    allow_truncation = forms.BooleanField(required=False, label="Accept truncation of too-long examples")

    # hyperparameter inputs that show the effective default as their placeholder (empty = that default)
    PLACEHOLDER_FIELDS = ("max_steps", "epochs", "learning_rate", "batch_size", "grad_accum", "max_seq_len",
                          "lora_r", "lora_alpha", "lora_dropout", "warmup_ratio", "weight_decay", "save_steps",
                          "save_total_limit", "vocab_size")

    def __init__(self, *args, versions=(), base_models=(), model_versions=(), sizes=(), **kwargs):
        super().__init__(*args, **kwargs)
        version_choices = [(v.pk, f"{v.dataset.name} v{v.number} ({v.example_count} examples)") for v in versions]
        self.fields["dataset_version"].choices = version_choices
        self.fields["base_model"].choices = [(b.pk, b.name or b.pk) for b in base_models]
        self.fields["parent_version"].choices = [("", "— none —")] + [
            (m.pk, f"{m.name} (#{m.pk}, {m.kind})") for m in model_versions]
        self.fields["size"].choices = [("", "nano")] + [(s, s) for s in sizes]
        for i in range(1, MAX_EXTRA_STAGES + 1):
            self.fields[f"stage{i}_version"] = forms.TypedChoiceField(
                coerce=int, required=False, empty_value=None, choices=[("", "—")] + version_choices,
                label=f"Stage {i + 1} dataset version")
            self.fields[f"stage{i}_epochs"] = _opt_float(label=f"Stage {i + 1} epochs")
        self.fields["stage0_epochs"] = _opt_float(label="Stage 1 epochs (pipelines)")
        self._defaults_table(base_models, model_versions)

    def _defaults_table(self, base_models, model_versions) -> None:
        """Effective defaults per (base model, method, continuing), from the same function run_create uses;
        the page's script switches placeholders with the choices, the server renders the current ones."""
        from apps.training.services import run_default_hyperparameters

        by_id = {b.pk: b for b in base_models}
        table: dict[str, dict[str, str]] = {}
        for bm_id in [""] + list(by_id):
            for method in TrainingRun.Method.values:
                for continuing in ((False, True) if method != "scratch" else (False,)):
                    hp = run_default_hyperparameters(method=method, base_model=by_id.get(bm_id),
                                                     continuing=continuing)
                    table[f"{bm_id}|{method}|{int(continuing)}"] = {
                        k: _shown(hp[k]) for k in self.PLACEHOLDER_FIELDS if k in hp}
        self.defaults_table = table
        self.parent_base_models = {str(m.pk): m.base_model_id or "" for m in model_versions}
        sched = run_default_hyperparameters(method="lora")["lr_scheduler"]
        self.fields["lr_scheduler"].choices = [("", f"default ({sched})")] + self.fields["lr_scheduler"].choices[1:]
        for name in self.PLACEHOLDER_FIELDS:
            self.fields[name].widget.attrs["data-default-of"] = name
        current = self.current_defaults()
        for name in self.PLACEHOLDER_FIELDS:
            self.fields[name].widget.attrs["placeholder"] = current.get(name, "")

    def _value(self, name):
        if self.is_bound:
            return self.data.get(name) or ""
        value = self.initial.get(name, self.fields[name].initial)
        if value in (None, "") and getattr(self.fields[name], "choices", None):
            value = list(self.fields[name].choices)[0][0]  # what the browser shows selected
        return "" if value is None else str(value)

    def current_defaults(self) -> dict[str, str]:
        """Placeholders for the chosen method, base model (a continued version's own) and backend."""
        if self._value("backend") == TrainingRun.Backend.TOGETHER:
            return {}  # the remote provider applies its own defaults
        method = self._value("method") or "lora"
        parent = self._value("parent_version")
        bm = self.parent_base_models.get(parent, "") if parent else self._value("base_model")
        key = f"{bm}|{method}|{int(bool(parent) and method != 'scratch')}"
        return self.defaults_table.get(key) or self.defaults_table.get(f"|{method}|0", {})

    HP_FIELDS = ("max_steps", "epochs", "learning_rate", "batch_size", "grad_accum", "max_seq_len", "lora_r",
                 "lora_alpha", "lora_dropout", "target_modules", "warmup_ratio", "weight_decay", "lr_scheduler",
                 "gradient_checkpointing", "save_steps", "save_total_limit", "size", "vocab_size", "eval_prompts")

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        hp = {k: d.get(k) for k in self.HP_FIELDS
              if d.get(k) is not None and d.get(k) != "" and d.get(k) is not False}
        if d.get("target_modules") == "all-linear":
            hp.pop("target_modules", None)
        stages = None
        extra = [(d.get(f"stage{i}_version"), d.get(f"stage{i}_epochs")) for i in range(1, MAX_EXTRA_STAGES + 1)]
        extra = [(v, e) for v, e in extra if v]
        if extra:
            stages = [{"dataset_version_id": d["dataset_version"], "epochs": d.get("stage0_epochs")}]
            stages += [{"dataset_version_id": v, "epochs": e} for v, e in extra]
        base_model = d.get("base_model") or None
        if d.get("backend") == "together":
            base_model = d.get("remote_model") or None
        if d.get("parent_version"):
            base_model = None
        return dict(name=d.get("name") or "", dataset_version_id=d["dataset_version"], method=d["method"],
                    base_model=base_model, parent_version_id=d.get("parent_version"), backend=d["backend"],
                    hyperparameters=hp, stages=stages, allow_truncation=d.get("allow_truncation", False))

    def add_service_errors(self, errors: list[dict], message: str) -> None:
        added = False
        for e in errors:
            field = e.get("field") or ""
            name = _FIELD_MAP.get(field, field.split(".", 1)[1] if field.startswith("hyperparameters.") else field)
            if field.startswith("stages."):
                parts = field.split(".")
                idx = int(parts[1]) if parts[1].isdigit() else 0
                name = "dataset_version" if idx == 0 else f"stage{idx}_version"
            if name in self.fields:
                self.add_error(name, e["message"])
                added = True
            else:
                self.add_error(None, f"{field}: {e['message']}" if field else e["message"])
                added = True
        if not added:
            self.add_error(None, message)
