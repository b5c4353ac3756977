"""Forms of the Monitoring page: the selection (GET: alias, version, range) and a new alert rule (POST, admins).
The services check a rule again; their field errors come back through `add_service_errors`."""
from __future__ import annotations

from django import forms

from apps.monitoring.models import METRICS
from apps.monitoring.selectors import RANGES


class FilterForm(forms.Form):
    alias = forms.ChoiceField(required=False, label="Alias")
    version = forms.ChoiceField(required=False, label="Version / target")
    range = forms.ChoiceField(required=False, label="Time range", choices=[(k, k) for k in RANGES], initial="1h")

    def __init__(self, *args, aliases=(), targets=(), **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["alias"].choices = [("", "every alias")] + [(a, a) for a in aliases]
        self.fields["version"].choices = [("", "every version")] + list(targets)

    def selection(self) -> dict:
        """The valid part of the selection (a value that is not a choice is dropped, its error shown)."""
        data = {}
        if self.is_bound:
            data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        return {"alias": data.get("alias") or None, "version": data.get("version") or None,
                "range": data.get("range") or "1h"}


class RuleForm(forms.Form):
    name = forms.CharField(max_length=100)
    metric = forms.ChoiceField(choices=[(k, f"{m.label} ({m.unit})") for k, m in METRICS.items()])
    alias = forms.CharField(required=False, max_length=100, help_text="traffic metrics: empty = every alias",
                            widget=forms.TextInput(attrs={"list": "aliases-seen", "placeholder": "every alias"}))
    threshold = forms.FloatField(min_value=0, help_text="% or ms, by metric; fires when above")
    window_minutes = forms.IntegerField(min_value=1, max_value=1440, initial=5, label="Window (minutes)")
    min_requests = forms.IntegerField(min_value=0, max_value=1_000_000, initial=10, label="Min. requests",
                                      help_text="traffic metrics: fewer, no verdict")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def add_service_errors(self, exc) -> None:
        fields = [e for e in exc.errors if e.get("field") in self.fields]
        for e in fields:
            self.add_error(e["field"], e["message"])
        if not fields:
            self.add_error(None, exc.message)
