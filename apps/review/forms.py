"""The review pages' forms. They parse input only: apps.review.services validate (overlap against the
assignees, unknown users, the filter, labels) and their field errors come back through `add_service_errors`,
so the page and /api show the same messages on the same fields.

- TaskForm: a new review task (dataset version, name, instructions, assignees, overlap, lead, the filter
  that selects its examples, the questions: labels and a 1-5 rating).
- BulkForm: a filter over the task's items and what to do with every match (accept, reject, tag, assign).
- The filter's inputs are one list (FILTER_FIELDS) shared by both forms; `filter_dict()` turns them into the
  services' filter dict (empty inputs dropped)."""
from __future__ import annotations

from django import forms

from apps.review.models import BULK_ACTIONS

SPLITS = [("", "any split"), ("train", "train"), ("validation", "validation")]
STATES = [("", "any state"), ("unreviewed", "not reviewed yet"), ("pending", "pending (waiting for reviewers)"),
          ("agreed", "agreed"), ("disputed", "disputed"), ("resolved", "resolved"), ("accepted", "accepted"),
          ("rejected", "rejected")]

# (name, label, kind): the filter inputs both forms show, in this order
FILTER_FIELDS = (
    ("q", "Text", "text"), ("category", "Category", "text"), ("code", "Validation issue code", "text"),
    ("split", "Split", "split"), ("source_file", "Source file", "text"),
    ("min_turns", "Turns ≥", "int"), ("max_turns", "Turns ≤", "int"),
    ("min_tokens", "Tokens ≥", "int"), ("max_tokens", "Tokens ≤", "int"),
)


def _add_filter_fields(form: forms.Form, *, items: bool) -> None:
    for name, label, kind in FILTER_FIELDS:
        if kind == "int":
            form.fields[name] = forms.IntegerField(required=False, min_value=0, max_value=10**9, label=label)
        elif kind == "split":
            form.fields[name] = forms.ChoiceField(required=False, choices=SPLITS, label=label)
        else:
            form.fields[name] = forms.CharField(required=False, max_length=500, label=label, strip=True)
    if items:
        form.fields["state"] = forms.ChoiceField(required=False, choices=STATES, label="Review state")
        form.fields["tag"] = forms.CharField(required=False, max_length=60, label="Tag", strip=True)


def filter_names(*, items: bool) -> list[str]:
    return [n for n, _, _ in FILTER_FIELDS] + (["state", "tag"] if items else [])


class ServiceErrorsMixin:
    """Map a service's ApplicationError onto fields (`filter.q` -> `q`, `version_id` -> `dataset_version`)."""

    field_map: dict[str, str] = {}

    def add_service_errors(self, exc) -> None:
        errors = exc.errors or [{"field": getattr(exc, "field", None), "message": exc.message}]
        for err in errors:
            field = err.get("field") or ""
            field = self.field_map.get(field, field)
            if field.startswith("filter."):
                field = field[len("filter."):]
            self.add_error(field if field in self.fields else None, err["message"])

    def filter_dict(self) -> dict:
        data = self.cleaned_data
        return {n: data[n] for n in filter_names(items="state" in self.fields)
                if n in data and data[n] not in (None, "")}


class TaskForm(ServiceErrorsMixin, forms.Form):
    field_map = {"version_id": "dataset_version", "dataset_version_id": "dataset_version"}

    dataset_version = forms.TypedChoiceField(coerce=int, label="Dataset version")
    name = forms.CharField(max_length=200)
    instructions = forms.CharField(required=False, max_length=20000, widget=forms.Textarea(attrs={"rows": 4}),
                                   help_text="Shown to every reviewer above each example.")
    assignees = forms.MultipleChoiceField(help_text="Reviewers, members and admins can review.",
                                          widget=forms.CheckboxSelectMultiple(attrs={"class": "check-choice"}))
    overlap = forms.IntegerField(initial=1, min_value=1, max_value=20,
                                 help_text="How many reviewers see each example (at most the number of assignees).")
    lead = forms.ChoiceField(required=False, label="Lead (adjudicates besides admins)")
    labels = forms.CharField(required=False, max_length=3000, label="Labels",
                             help_text="Optional label choices, comma-separated (e.g. refusal, tool misuse).")
    rating = forms.BooleanField(required=False, label="Ask a 1–5 rating")

    def __init__(self, *args, versions=(), users=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset_version"].choices = [("", "Choose a dataset version")] + [
            (v.pk, f"{v.dataset.name} · v{v.number} ({v.example_count} examples)") for v in versions]
        self.fields["assignees"].choices = [(u.username, f"{u.username} ({u.role})") for u in users]
        self.fields["lead"].choices = [("", "nobody (admins adjudicate)")] + [(u.username, u.username) for u in users]
        _add_filter_fields(self, items=False)

    def clean_labels(self) -> list[str]:
        raw = self.cleaned_data.get("labels") or ""
        return list(dict.fromkeys(p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()))


class BulkForm(ServiceErrorsMixin, forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in BULK_ACTIONS], label="Action")
    new_tag = forms.CharField(required=False, max_length=60, label="Tag to add", strip=True)
    assign_to = forms.MultipleChoiceField(required=False, label="Assign to",
                                          widget=forms.CheckboxSelectMultiple(attrs={"class": "check-choice"}))
    field_map = {"tag": "new_tag", "assignees": "assign_to"}

    def __init__(self, *args, assignees=(), **kwargs):
        super().__init__(*args, **kwargs)
        _add_filter_fields(self, items=True)
        self.fields["assign_to"].choices = [(u, u) for u in assignees]
        # the filter first, then what to do
        order = filter_names(items=True) + ["action", "new_tag", "assign_to"]
        self.order_fields(order)

    def add_service_errors(self, exc) -> None:
        # a filter key `tag` is the filter's; the action's tag is `tag` at the top level
        errors = exc.errors or [{"field": getattr(exc, "field", None), "message": exc.message}]
        for err in errors:
            field = err.get("field") or ""
            if field.startswith("filter."):
                field = field[len("filter."):]
            else:
                field = self.field_map.get(field, field)
            self.add_error(field if field in self.fields else None, err["message"])

    def clean(self):
        data = super().clean()
        if data.get("action") == "tag" and not data.get("new_tag"):
            self.add_error("new_tag", "Give the tag to add.")
        if data.get("action") == "assign" and not data.get("assign_to"):
            self.add_error("assign_to", "Choose who gets the matching items.")
        return data
