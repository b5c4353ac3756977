"""The new-run form. It parses input; run_create validates (and its field errors are mapped back).

Contract: the hyperparameter inputs are generated from the hyperparameter table
(apps/training/hyperparameters.py): one `HyperparameterField` per row, with the row's label, help, widget
and HTML hints; run_create checks them with the table's `check()` and its field errors are mapped back (so
the form and /api show the same messages on the same fields). The inputs that do not apply to the chosen
method and backend are rendered hidden and disabled: they are neither submitted by the browser nor
validated or passed on by the server (static/js/run_form.js shows and enables them when the choice changes). `hyperparameter_groups` is what
the template loops over; `defaults_table` feeds the placeholders (the effective default of an empty input).
"""
from __future__ import annotations

from django import forms

from apps.training.hyperparameters import BACKEND_METHODS, TABLE, Hyperparameter, grouped
from apps.training.models import TrainingRun

MAX_EXTRA_STAGES = 3

# service error field -> form field
_FIELD_MAP = {"dataset_version_id": "dataset_version", "dataset_id": "dataset_version",
              "parent_version_id": "parent_version", "hyperparameters.model": "remote_model"}

# the run's own inputs that apply to some methods / backends only: name -> (methods, backends)
_CONTEXT_FIELDS = {
    "base_model": (("lora", "full", "dpo", "kto", "grpo"), ("local",)),
    "parent_version": (("lora", "full", "dpo", "kto", "grpo", "grow"), ("local",)),
    "remote_model": (("lora", "full"), ("together",)),
}
FORM_ROWS: tuple[Hyperparameter, ...] = tuple(spec for spec in TABLE if spec.in_form)
# inputs that show the effective default as their placeholder (empty = that default)
PLACEHOLDER_FIELDS = tuple(spec.name for spec in FORM_ROWS if spec.widget in ("number", "text"))


def _shown(value) -> str:
    if isinstance(value, dict):  # reward weights: "answer_match=0.9, length=0.1" (empty: the preset's)
        return ", ".join(f"{k}={_shown(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _widget(spec: Hyperparameter) -> forms.Widget:
    attrs = {"aria-describedby": f"id_{spec.name}_help"}
    if spec.widget == "number":
        attrs["step"] = spec.step
        b = spec.bounds
        if b is not None and b.min is not None and not b.min_exclusive:
            attrs["min"] = f"{b.min:g}" if spec.type == "float" else str(int(b.min))
        if b is not None and b.max is not None and not b.max_exclusive:
            attrs["max"] = f"{b.max:g}" if spec.type == "float" else str(int(b.max))
        return forms.NumberInput(attrs=attrs)
    if spec.widget == "checkbox":
        return forms.CheckboxInput(attrs=attrs)
    if spec.widget == "select":
        choices = [("", "default")] + [(c, c.replace("_", " ")) for c in spec.choices]
        return forms.Select(attrs=attrs, choices=choices)
    if spec.widget == "textarea":
        return forms.Textarea(attrs={**attrs, "rows": spec.rows})
    return forms.TextInput(attrs=attrs)


# a form section whose title depends on the method (the table's title names every method it serves)
GROUP_TITLES_BY_METHOD = {"preference": {"dpo": "Preference (DPO)", "kto": "Preference (KTO)",
                                         "grpo": "KL penalty (GRPO)"}}


class HyperparameterField(forms.Field):
    """One row of the table. It only collects the value (empty: None): run_create checks every row with the
    table's `check()` and its field errors come back through `add_service_errors`, so the form shows
    exactly the messages /api returns, all at once, cross-field rules included."""

    def __init__(self, spec: Hyperparameter, **kwargs):
        self.spec = spec
        super().__init__(required=False, label=spec.label, help_text=spec.help, widget=_widget(spec), **kwargs)

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip()
        return None if value in self.empty_values else value


class RunForm(forms.Form):
    name = forms.CharField(required=False, max_length=200)
    dataset_version = forms.TypedChoiceField(coerce=int, label="Dataset version")
    method = forms.ChoiceField(choices=TrainingRun.Method.choices, initial="lora")
    base_model = forms.ChoiceField(required=False, label="Base model")
    parent_version = forms.TypedChoiceField(coerce=int, required=False, empty_value=None,
                                            label="Continue from model version")
    backend = forms.ChoiceField(choices=TrainingRun.Backend.choices, initial="local")
    remote_model = forms.CharField(required=False, label="Remote model (Together)")
    allow_truncation = forms.BooleanField(required=False, label="Accept truncation of too-long examples")

    PLACEHOLDER_FIELDS = PLACEHOLDER_FIELDS
    HP_FIELDS = tuple(spec.name for spec in FORM_ROWS)

    def __init__(self, *args, versions=(), base_models=(), model_versions=(), sizes=(), **kwargs):
        super().__init__(*args, **kwargs)
        version_choices = [(v.pk, f"{v.dataset.name} v{v.number} ({v.example_count} examples)") for v in versions]
        self.fields["dataset_version"].choices = version_choices
        self.fields["base_model"].choices = [(b.pk, b.name or b.pk) for b in base_models]
        self.fields["parent_version"].choices = [("", "— none —")] + [
            (m.pk, f"{m.name} (#{m.pk}, {m.kind})") for m in model_versions]
        for i in range(1, MAX_EXTRA_STAGES + 1):
            self.fields[f"stage{i}_version"] = forms.TypedChoiceField(
                coerce=int, required=False, empty_value=None, choices=[("", "—")] + version_choices,
                label=f"Stage {i + 1} dataset version")
            self.fields[f"stage{i}_epochs"] = forms.FloatField(required=False, label=f"Stage {i + 1} epochs")
        self.fields["stage0_epochs"] = forms.FloatField(required=False, label="Stage 1 epochs (pipelines)")
        self.chosen_method = self._value("method") or "lora"
        self.chosen_backend = self._value("backend") or "local"
        self.backend_methods = {b: list(m) for b, m in BACKEND_METHODS.items()}
        for spec in FORM_ROWS:
            if not spec.applies(self.chosen_method, self.chosen_backend):
                # hidden: not submitted by the browser, and what is posted anyway is ignored
                self.fields[spec.name].disabled = True
        for name, (methods, backends) in _CONTEXT_FIELDS.items():
            if self.chosen_method not in methods or self.chosen_backend not in backends:
                self.fields[name].disabled = True
        if self.chosen_backend != TrainingRun.Backend.LOCAL:  # pipelines and truncation are local only
            for name in [f for f in self.fields if f.startswith("stage")] + ["allow_truncation"]:
                self.fields[name].disabled = True
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
        local = (run_default_hyperparameters(method="scratch") | run_default_hyperparameters(method="dpo")
                 | run_default_hyperparameters(method="lora") | run_default_hyperparameters(method="grpo")
                 | run_default_hyperparameters(method="grow"))
        for spec in FORM_ROWS:
            if spec.widget == "select" and spec.name in local:
                field = self.fields[spec.name]
                field.widget.choices = [("", f"default ({local[spec.name]})")] + list(field.widget.choices)[1:]
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

    # -- rendering ---------------------------------------------------------------------------------------
    def _item(self, name: str, methods=None, backends=None) -> dict:
        """One input for the template; methods/backends None: it always applies (no data-* attributes)."""
        field = self[name]
        return {"field": field, "methods": " ".join(methods or ()), "backends": " ".join(backends or ()),
                "visible": not self.fields[name].disabled,
                "checkbox": isinstance(self.fields[name].widget, forms.CheckboxInput)}

    def context_items(self) -> list[dict]:
        """The 'what to train' inputs, each with the methods/backends it applies to."""
        names = ("name", "dataset_version", "method", "base_model", "parent_version", "backend", "remote_model")
        return [self._item(n, *_CONTEXT_FIELDS.get(n, (None, None))) for n in names]

    def hyperparameter_groups(self) -> list[dict]:
        """[{key, title, titles (JSON: the title per method, where it differs), visible, open, items}] in the
        table's group order (the template loops over it; static/js/run_form.js retitles on a method change)."""
        import json

        out = []
        for key, title, rows in grouped(FORM_ROWS):
            items = [self._item(spec.name, spec.methods, spec.backends) for spec in rows]
            has_errors = any(item["field"].errors for item in items)
            titles = GROUP_TITLES_BY_METHOD.get(key, {})
            out.append({"key": key, "title": titles.get(self.chosen_method, title), "items": items,
                        "titles": json.dumps({"": title, **titles}),
                        "visible": any(item["visible"] for item in items),
                        "open": has_errors or key not in ("evaluation", "advanced")})
        return out

    # -- to the service ----------------------------------------------------------------------------------
    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        method, backend = d.get("method") or "lora", d.get("backend") or "local"
        hp = {}
        for spec in FORM_ROWS:
            value = d.get(spec.name)
            if spec.applies(method, backend) and value not in (None, "", False, []):
                hp[spec.name] = value
        stages = None
        extra = [(d.get(f"stage{i}_version"), d.get(f"stage{i}_epochs")) for i in range(1, MAX_EXTRA_STAGES + 1)]
        extra = [(v, e) for v, e in extra if v]
        if extra:
            stages = [{"dataset_version_id": d["dataset_version"], "epochs": d.get("stage0_epochs")}]
            stages += [{"dataset_version_id": v, "epochs": e} for v, e in extra]
        base_model = d.get("base_model") or None
        if backend == "together":
            base_model = d.get("remote_model") or None
        if d.get("parent_version"):
            base_model = None
        return dict(name=d.get("name") or "", dataset_version_id=d["dataset_version"], method=method,
                    base_model=base_model, parent_version_id=d.get("parent_version"), backend=backend,
                    hyperparameters=hp, stages=stages, allow_truncation=d.get("allow_truncation", False))

    def add_service_errors(self, errors: list[dict], message: str) -> None:
        added = False
        for e in errors:
            field = e.get("field") or ""
            name = _FIELD_MAP.get(field, field.split(".", 1)[1] if field.startswith("hyperparameters.") else field)
            if name == "base_model" and self.chosen_backend == TrainingRun.Backend.TOGETHER:
                name = "remote_model"
            if field.startswith("stages."):
                parts = field.split(".")
                idx = int(parts[1]) if parts[1].isdigit() else 0
                name = "dataset_version" if idx == 0 else f"stage{idx}_version"
            if name in self.fields and not self.fields[name].disabled:
                self.add_error(name, e["message"])
            else:  # no visible input for it: say which one
                self.add_error(None, f"{field}: {e['message']}" if field else e["message"])
            added = True
        if not added:
            self.add_error(None, message)


for _spec in FORM_ROWS:
    RunForm.base_fields[_spec.name] = HyperparameterField(_spec)
