"""The export form of a model version's page: a format (those the version has) and, for GGUF, a quantization
(apps/registry/exports/formats.py is the one table of both; the service validates again and its field errors
come back onto this form)."""
from django import forms

from apps.registry.exports.formats import DEFAULT_QUANTIZATION, FORMATS, OFFERED_QUANTIZATIONS, QUANTIZATIONS


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(k, v["label"]) for k, v in FORMATS.items()], initial="gguf",
                               label="Format")
    quantization = forms.ChoiceField(
        choices=[(q, QUANTIZATIONS[q]["label"]) for q in OFFERED_QUANTIZATIONS], required=False,
        initial=DEFAULT_QUANTIZATION, label="Quantization (GGUF)")

    def __init__(self, *args, version=None, **kwargs):
        super().__init__(*args, **kwargs)
        if version is not None:
            self.fields["format"].choices = [(k, v["label"]) for k, v in FORMATS.items()
                                             if version.kind in v["kinds"]
                                             and (k != "adapter" or version.artifact_path)]

    def clean(self):
        data = super().clean()
        if data.get("format") != "gguf":
            data["quantization"] = None  # the select is hidden for other formats; what it still says is ignored
        return data
