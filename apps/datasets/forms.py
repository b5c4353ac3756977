from django import forms
from django.conf import settings

from apps.datasets.formats import FORMATS, TARGETS


def _base_model_choices():
    from apps.registry.models import BaseModel

    return [("", "Default base model")] + [(b.id, f"{b.name} ({b.id})") for b in BaseModel.objects.all()]


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Required for a new dataset.")
    file = forms.FileField(help_text="JSONL (OpenAI / Together), Parquet, CSV, Q:/A: or User:/Assistant: text, "
                                     "plain text, markdown scenarios, or a zip of scenario folders.")
    format = forms.ChoiceField(required=False, choices=[("", "Detect automatically")] + [(k, f"{k} — {v}") for k, v in FORMATS.items()])
    target = forms.ChoiceField(choices=[(t, t) for t in TARGETS], initial="local",
                               help_text="Which rules to validate against: local training, OpenAI or Together.")
    base_model = forms.ChoiceField(required=False, help_text="Tokens are counted with this model's tokenizer and chat template.")
    split_ratio = forms.FloatField(required=False, min_value=0.0, max_value=0.5, initial=0.1,
                                   help_text="Share of examples held out for validation (by a stable content hash).")
    columns = forms.CharField(required=False, max_length=500,
                              help_text="CSV / Parquet column mapping, e.g. `prompt=question, completion=answer` "
                                        "or `messages=conversation` or `text=body` (default: guessed).")
    dataset_id = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = _base_model_choices()

    def clean_file(self):
        f = self.cleaned_data["file"]
        if f.size > settings.HUB_MAX_UPLOAD_MB * 1024 * 1024:
            raise forms.ValidationError(f"The file is larger than the {settings.HUB_MAX_UPLOAD_MB} MB limit.")
        return f

    def clean_columns(self):
        from apps.datasets.services import parse_column_mapping

        from apps.core.exceptions import ValidationFailed

        try:
            return parse_column_mapping(self.cleaned_data.get("columns") or "")
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self):
        data = super().clean()
        if not data.get("dataset_id") and not (data.get("name") or "").strip():
            self.add_error("name", "Give the dataset a name.")
        return data
