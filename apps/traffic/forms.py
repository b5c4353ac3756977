"""Forms of the traffic pages: the Requests filter (GET), "Add to dataset" (POST) and capture rules.
Services check everything again; their field errors come back through `add_service_errors`."""
from __future__ import annotations

from django import forms
from django.utils import timezone

from apps.core.inputs import MAX_ID

STATUS_CHOICES = [("", "any status"), ("ok", "ok (< 400)"), ("4xx", "4xx"), ("5xx", "5xx"), ("error", "any error")]
FALLBACK_CHOICES = [("", "any"), ("yes", "served by a fallback"), ("no", "first target")]
SINCE_CHOICES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


class _ServiceErrors:
    def add_service_errors(self, exc) -> None:
        fields = [e for e in exc.errors if e.get("field") in self.fields]
        for e in fields:
            self.add_error(e["field"], e["message"])
        if not fields:
            self.add_error(None, exc.message)


class RequestFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "words in prompts and answers", "type": "search"}))
    model = forms.CharField(required=False, max_length=200, label="Alias / model",
                            widget=forms.TextInput(attrs={"list": "models-seen"}))
    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="API key")
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)
    served_by = forms.CharField(required=False, max_length=200, label="Served by",
                                widget=forms.TextInput(attrs={"list": "targets-seen"}))
    fallback = forms.ChoiceField(required=False, choices=FALLBACK_CHOICES)
    latency_min = forms.FloatField(required=False, min_value=0, max_value=1e9, label="Latency ≥ (ms)")
    latency_max = forms.FloatField(required=False, min_value=0, max_value=1e9, label="Latency ≤ (ms)")
    since = forms.DateTimeField(required=False, label="From",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))
    until = forms.DateTimeField(required=False, label="To",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))

    def __init__(self, *args, keys=(), **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [("", "any key")] + [(k.pk, f"{k.name} · {k.user.username}") for k in keys]

    def clean(self):
        data = super().clean()
        lo, hi = data.get("latency_min"), data.get("latency_max")
        if lo is not None and hi is not None and lo > hi:
            self.add_error("latency_max", "Must be at least the minimum latency.")
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "Must be after “From”.")
        return data

    def filters(self) -> dict:
        """The cleaned filters, as selectors.apply_filters takes them (empty ones left out)."""
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


def since_value(raw: str | None):
    seconds = SINCE_CHOICES.get(raw or "")
    return timezone.now() - timezone.timedelta(seconds=seconds) if seconds else None


class ExportForm(_ServiceErrors, forms.Form):
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("filter", "filter")])
    ids = forms.TypedMultipleChoiceField(required=False, coerce=int)
    dataset = forms.CharField(required=False, max_length=20)
    new_dataset = forms.CharField(required=False, max_length=200, label="New dataset")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # any id-shaped value is a choice; the service checks each one exists and is the user's
        self.fields["ids"].valid_value = lambda value: str(value).isascii() and str(value).isdigit() \
            and 0 < int(value) <= MAX_ID


class CaptureRuleForm(_ServiceErrors, forms.Form):
    pattern = forms.CharField(max_length=200, label="Alias or model",
                              help_text="A name or a pattern: production, gpt-*, *",
                              widget=forms.TextInput(attrs={"list": "models-seen"}))
    percentage = forms.FloatField(min_value=0.01, max_value=100, initial=10, label="Keep (%)")
    dataset = forms.TypedChoiceField(coerce=int, label="Dataset")
    only_successful = forms.BooleanField(required=False, initial=True, label="Only clean answers",
                                         help_text="Skip answers cut by max tokens or a broken stream.")

    def __init__(self, *args, datasets=(), **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [("", "choose…")] + [(d.pk, d.name) for d in datasets]
