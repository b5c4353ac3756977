"""Forms of the tool registry page: define or edit a tool (its JSON schema in a textarea), scan a dataset
version. The services check the name, the JSON and the schema; the view puts their field errors on these fields."""
from __future__ import annotations

from django import forms

from apps.registry.tools.builtin import CALL_FORMATS

SCHEMA_PLACEHOLDER = '{\n  "type": "object",\n  "properties": {\n    "city": {"type": "string", "description": "City name"}\n  },\n  "required": ["city"]\n}'


class ToolForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="letters, digits, _ and -; e.g. get_weather",
                           widget=forms.TextInput(attrs={"placeholder": "get_weather", "autocomplete": "off"}))
    call_format = forms.ChoiceField(choices=[(k, k) for k in CALL_FORMATS], initial="openai",
                                    label="Call format")
    description = forms.CharField(max_length=4000, required=False,
                                  widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What the tool does"}))
    parameters = forms.CharField(required=False, max_length=100_000, label="Parameters (JSON schema)",
                                 widget=forms.Textarea(attrs={"rows": 12, "class": "mono", "spellcheck": "false",
                                                              "placeholder": SCHEMA_PLACEHOLDER}))
    editing = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args, editing: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if editing or (self.is_bound and self.data.get("editing")):
            self.fields["name"].widget.attrs["readonly"] = True


class ScanForm(forms.Form):
    dataset_version_id = forms.TypedChoiceField(coerce=int, label="Dataset version")

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset_version_id"].choices = [
            (v.pk, f"{v.dataset.name} v{v.number} · {v.example_count} examples") for v in versions]
