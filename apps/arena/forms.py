"""The arena pages' forms. They parse input only: apps.arena.services validate (do the models route, is the
dataset version ready, overlap against the voters) and their field errors come back through
`add_service_errors`, so the page and /api show the same messages.

- ArenaForm: a new arena — contestants (model versions, aliases, provider models one per line), the prompts
  (a dataset version's validation split, or prompts typed in: one per line, or separated by lines of
  `---` when a prompt spans lines), voters and overlap, generation settings, an optional judge.
- DpoForm: the base model (optional) of a DPO run on the arena's preference export.
"""
from __future__ import annotations

import re

from django import forms

SEPARATOR = re.compile(r"^\s*---+\s*$", re.M)


def split_prompts(text: str) -> list[str]:
    text = (text or "").replace("\r\n", "\n")
    if SEPARATOR.search(text):
        parts = SEPARATOR.split(text)
    else:
        parts = text.split("\n")
    return [p.strip() for p in parts if p.strip()]


class ArenaForm(forms.Form):
    name = forms.CharField(max_length=200)
    versions = forms.MultipleChoiceField(required=False, label="Model versions",
                                         widget=forms.CheckboxSelectMultiple(attrs={"class": "check-choice"}))
    aliases = forms.MultipleChoiceField(required=False, label="Aliases",
                                        widget=forms.CheckboxSelectMultiple(attrs={"class": "check-choice"}))
    provider_models = forms.CharField(required=False, max_length=5000, label="Provider models",
                                      widget=forms.Textarea(attrs={"rows": 3, "class": "mono",
                                                                   "placeholder": "openrouter/gpt-4o"}),
                                      help_text="One provider/model per line.")
    source = forms.ChoiceField(choices=[("dataset", "A dataset version's validation split"),
                                        ("prompts", "Prompts typed here")], initial="dataset",
                               widget=forms.RadioSelect, label="Prompts from")
    dataset_version = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Dataset version")
    max_prompts = forms.IntegerField(required=False, min_value=1, max_value=1000, initial=100,
                                     label="At most this many prompts")
    prompts = forms.CharField(required=False, max_length=1_000_000, label="Prompts",
                              widget=forms.Textarea(attrs={"rows": 6}),
                              help_text="One per line; or separate prompts with a line of three dashes (---) when "
                                        "they span lines.")
    voters = forms.MultipleChoiceField(required=False, label="Voters",
                                       help_text="None ticked: every signed-in user may vote.",
                                       widget=forms.CheckboxSelectMultiple(attrs={"class": "check-choice"}))
    overlap = forms.IntegerField(initial=1, min_value=1, max_value=20,
                                 help_text="How many different voters judge each pair of answers.")
    temperature = forms.FloatField(required=False, initial=0.7, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(required=False, initial=512, min_value=1, max_value=32768, label="Max tokens")
    concurrency = forms.IntegerField(initial=4, min_value=1, max_value=32,
                                     help_text="Requests in flight while the answers are generated.")
    judge_model = forms.CharField(required=False, max_length=300, label="Judge model (optional)",
                                  help_text="An alias, mv-<id> or provider/model; it judges every pair blind.")
    judge_rubric = forms.CharField(required=False, max_length=20000, label="Judge rubric",
                                   widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, versions=(), aliases=(), dataset_versions=(), users=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["versions"].choices = [(f"mv-{v.pk}", f"{v.name} (mv-{v.pk})") for v in versions]
        self.fields["aliases"].choices = [(a, a) for a in aliases]
        self.fields["dataset_version"].choices = [("", "Choose a dataset version")] + [
            (v.pk, f"{v.dataset.name} · v{v.number} ({v.example_count} examples)") for v in dataset_versions]
        self.fields["voters"].choices = [(u.username, f"{u.username} ({u.role})") for u in users]
        self._sources: list[str] = []

    def contestants(self) -> list[str]:
        """What the service gets, in order; remembers which field each came from (for its errors)."""
        d = self.cleaned_data
        lines = [ln.strip() for ln in (d.get("provider_models") or "").splitlines() if ln.strip()]
        out, self._sources = [], []
        for field, values in (("versions", d.get("versions") or []), ("aliases", d.get("aliases") or []),
                              ("provider_models", lines)):
            out += values
            self._sources += [field] * len(values)
        return out

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        dataset = d.get("source") == "dataset"
        if dataset and not d.get("dataset_version"):
            self.add_error("dataset_version", "Choose a dataset version, or type prompts.")
        return {"name": d["name"], "contestants": self.contestants(),
                "dataset_version_id": d.get("dataset_version") if dataset else None,
                "prompts": None if dataset else split_prompts(d.get("prompts") or ""),
                "max_prompts": d.get("max_prompts"), "voters": d.get("voters") or [], "overlap": d.get("overlap") or 1,
                "temperature": d.get("temperature"), "max_tokens": d.get("max_tokens"),
                "concurrency": d.get("concurrency") or 4, "judge_model": d.get("judge_model") or None,
                "judge_rubric": d.get("judge_rubric") or ""}

    def add_service_errors(self, exc) -> None:
        errors = exc.errors or [{"field": getattr(exc, "field", None), "message": exc.message}]
        for err in errors:
            field = err.get("field") or ""
            head, _, rest = field.partition(".")
            if head == "contestants":
                index = rest.split(".")[0]
                known = index.isdigit() and int(index) < len(self._sources)
                target = self._sources[int(index)] if known else "versions"
            else:
                target = {"dataset_version_id": "dataset_version", "prompts": "prompts"}.get(head, head)
            self.add_error(target if target in self.fields else None, err["message"])


class DpoForm(forms.Form):
    base_model = forms.ChoiceField(required=False, label="Base model")
    from_winner = forms.BooleanField(required=False, initial=True, label="Continue the winner's model version")

    def __init__(self, *args, base_models=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = [("", "the winner's (or the default)")] + [
            (b.pk, f"{b.pk} · {b.name}") for b in base_models]
