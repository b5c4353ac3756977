"""The form that builds a deploy bundle, made from the one table of settings (config.FIELDS): a textarea for the
system prompt and a number field per sampling setting, each prefilled with the default the bundle would ship.
`config()` gives the service only what the person changed (an untouched prefilled system prompt stays "from the
training data"; an emptied one means "no system prompt")."""
from __future__ import annotations

from django import forms

from apps.registry.bundles.config import FIELDS


class BundleForm(forms.Form):
    def __init__(self, *args, defaults: dict, context_length: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.defaults = defaults
        for f in FIELDS:
            common = {"label": f.label, "help_text": f.help, "required": False, "initial": defaults.get(f.name)}
            if f.kind is str:
                self.fields[f.name] = forms.CharField(max_length=int(f.maximum), strip=False, widget=forms.Textarea(
                    attrs={"rows": 4, "placeholder": "No system prompt"}), **common)
            elif f.kind is float:
                self.fields[f.name] = forms.FloatField(min_value=f.minimum, max_value=f.maximum,
                                                       widget=forms.NumberInput(attrs={"step": "any"}), **common)
            else:
                upper = min(int(f.maximum), context_length) if f.name == "max_tokens" else int(f.maximum)
                self.fields[f.name] = forms.IntegerField(min_value=int(f.minimum), max_value=upper, **common)

    def config(self) -> dict:
        out = {}
        for f in FIELDS:
            value = self.cleaned_data.get(f.name)
            if f.kind is str:
                value = (value or "").replace("\r\n", "\n")
                if value != (self.defaults.get(f.name) or "").replace("\r\n", "\n"):
                    out[f.name] = value
            elif value is not None:
                out[f.name] = value
        return out
