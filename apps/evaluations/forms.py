"""The new-evaluation form. It parses input only: apps.evaluations.services validates (the versions have weights
here, the dataset version makes tasks, the weights name known components) and its field errors come back through
`add_service_errors`, so the page and /api show the same messages. Tasks come from a dataset version, or from JSON /
JSONL pasted or uploaded (apps.evaluations.tasks.parse_upload); weights from a preset, or one number per component
("custom")."""
from __future__ import annotations

from django import forms

from apps.evaluations.tasks import TaskError, parse_upload
from workers.engine import rewards

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
SERVICE_FIELDS = {"model_version_id": "model_version", "compare_to_version_id": "compare_to",
                  "dataset_version_id": "dataset_version", "tasks": "tasks_text", "weights": "preset",
                  "preset": "preset", "split": "split", "max_tasks": "max_tasks", "max_new_tokens": "max_new_tokens",
                  "name": "name"}


class EvaluationForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Optional: named after the versions and tasks.")
    model_version = forms.TypedChoiceField(coerce=int, empty_value=None, label="Model version")
    compare_to = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Compare with",
                                        help_text="A second version (usually the parent) answers the same tasks.")
    source = forms.ChoiceField(choices=[("dataset", "A dataset version"), ("tasks", "A JSON / JSONL task list")],
                               initial="dataset", widget=forms.RadioSelect, label="Tasks from")
    dataset_version = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Dataset version",
                                             help_text="Repository generations are dataset versions too.")
    split = forms.ChoiceField(choices=[("validation", "Validation split"), ("all", "All examples")],
                              initial="validation")
    tasks_text = forms.CharField(required=False, max_length=5_000_000, label="Tasks (JSON or JSONL)",
                                 widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "placeholder":
                                                              '{"prompt": "What is 6 * 7?", "answer": "42"}'}),
                                 help_text='A list, or one task per line: text, {prompt, answer?, tests?, language?, '
                                           'tools?}, {messages} or a generated task (tasks.json).')
    tasks_file = forms.FileField(required=False, label="…or upload a .json / .jsonl file")
    preset = forms.ChoiceField(label="Weights")
    max_tasks = forms.IntegerField(required=False, min_value=1, max_value=1000, initial=50, label="At most tasks")
    max_new_tokens = forms.IntegerField(required=False, min_value=1, max_value=4096, initial=256,
                                        label="Max new tokens")

    def __init__(self, *args, versions=(), dataset_versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(v.pk, f"{v.name} (mv-{v.pk})") for v in versions]
        self.fields["model_version"].choices = [("", "Choose a version")] + choices
        self.fields["compare_to"].choices = [("", "— no comparison —")] + choices
        self.fields["dataset_version"].choices = [("", "Choose a dataset version")] + [
            (v.pk, f"{v.dataset.name} · v{v.number} ({v.example_count} examples)") for v in dataset_versions]
        self.fields["preset"].choices = [(p, f"Preset: {p}") for p in rewards.PRESETS] + [("custom", "Custom weights")]
        self.fields["preset"].initial = "autonomous-agent"
        self.weight_fields = []
        for c in rewards.COMPONENTS.values():
            key = f"w_{c.name}"
            self.fields[key] = forms.FloatField(required=False, min_value=0, label=c.label, help_text=c.description)
            self.weight_fields.append(key)

    def weight_rows(self):
        return [self[k] for k in self.weight_fields]

    def clean_tasks_file(self):
        f = self.cleaned_data.get("tasks_file")
        if f and f.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"At most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        return f

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        kw = {"name": d.get("name") or "", "model_version_id": d.get("model_version"),
              "compare_to_version_id": d.get("compare_to"), "split": d.get("split") or "validation",
              "max_tasks": d.get("max_tasks"), "max_new_tokens": d.get("max_new_tokens")}
        if d.get("source") == "tasks":
            raw = d.get("tasks_text") or ""
            if d.get("tasks_file"):
                raw = d["tasks_file"].read().decode("utf-8", "replace")
            try:
                kw["tasks"] = parse_upload(raw)
            except TaskError as exc:
                self.add_error("tasks_text", exc.message)
        else:
            kw["dataset_version_id"] = d.get("dataset_version")
            if kw["dataset_version_id"] is None:
                self.add_error("dataset_version", "Choose a dataset version, or give a task list.")
        if d.get("preset") == "custom":
            kw["weights"] = {k[2:]: d[k] for k in self.weight_fields if d.get(k)}
            if not kw["weights"]:
                self.add_error("preset", "Give at least one component a weight above 0.")
        else:
            kw["preset"] = d.get("preset")
        return kw

    def add_service_errors(self, exc) -> None:
        for e in exc.errors or [{"field": None, "message": exc.message}]:
            field = (e.get("field") or "")
            if field.startswith("weights.") and f"w_{field[8:]}" in self.fields:
                target = f"w_{field[8:]}"
            else:
                target = SERVICE_FIELDS.get(field.split(".")[0])
            prefix = f"{field}: " if field.startswith("tasks.") else ""
            self.add_error(target if target in self.fields else None, prefix + e["message"])
