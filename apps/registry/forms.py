"""Forms of the registry pages: deploy (plain or as a canary with thresholds; the alias is chosen, never a
default, and every deploy is confirmed on the page first, naming the alias, what it serves now and what it
will serve), roll back to an earlier deployment with a reason, register a base model."""
from django import forms

from apps.core.inputs import MAX_ID


class DeployForm(forms.Form):
    alias = forms.SlugField(max_length=100,  # no initial value: deploying to `production` is never a default
                            error_messages={"required": "Choose the alias to deploy to."},
                            widget=forms.TextInput(attrs={"list": "alias-options", "autocomplete": "off",
                                                          "placeholder": "choose an alias"}),
                            help_text="e.g. production, staging, haiku (Claude Code's small model)")
    reason = forms.CharField(max_length=2000, required=False, label="Why",
                             widget=forms.TextInput(attrs={"placeholder": "e.g. better tool calls on the eval set"}))
    canary = forms.BooleanField(required=False, label="Deploy as a canary")
    canary_percent = forms.IntegerField(min_value=1, max_value=99, required=False, initial=10,
                                        label="Canary share (%)")
    error_rate = forms.FloatField(min_value=0, max_value=100, required=False, initial=5,
                                  label="Roll back above error rate (%)")
    p95_ms = forms.FloatField(min_value=1, max_value=3_600_000, required=False, label="… p95 latency (ms)")
    ttft_ms = forms.FloatField(min_value=1, max_value=3_600_000, required=False,
                               label="… p95 time to first token (ms)")
    tool_call_validity = forms.FloatField(min_value=0, max_value=100, required=False,
                                          label="Roll back below tool-call validity (%)")
    feedback = forms.FloatField(min_value=0, max_value=1, required=False, label="… mean feedback (0–1)")
    window_minutes = forms.IntegerField(min_value=1, max_value=1440, initial=5, required=False,
                                        label="Window (min)")
    min_requests = forms.IntegerField(min_value=1, max_value=1_000_000, initial=20, required=False,
                                      label="Min. observations")
    hold_minutes = forms.IntegerField(min_value=0, max_value=43_200, initial=30, required=False,
                                      label="Hold (min)")
    auto_promote = forms.BooleanField(required=False, label="Promote automatically once it held")
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    CANARY_FIELDS = ("canary_percent", "error_rate", "p95_ms", "ttft_ms", "tool_call_validity", "feedback",
                     "window_minutes", "min_requests", "hold_minutes", "auto_promote")

    def clean(self):
        data = super().clean()
        if data.get("canary"):
            if data.get("canary_percent") is None and "canary_percent" not in self.errors:
                self.add_error("canary_percent", "Give the canary's share of requests (1–99 %).")
            if not any(data.get(k) is not None for k in ("error_rate", "p95_ms", "ttft_ms", "tool_call_validity",
                                                          "feedback")) and not self.errors:
                self.add_error("error_rate", "Give at least one threshold.")
        return data

    def thresholds(self) -> dict:
        d = self.cleaned_data
        out = {"error_rate": d.get("error_rate"), "p95_ms": d.get("p95_ms"), "ttft_ms": d.get("ttft_ms"),
               "tool_call_validity": d.get("tool_call_validity"), "feedback": d.get("feedback")}
        for pct in ("error_rate", "tool_call_validity"):
            if out[pct] is not None:
                out[pct] = out[pct] / 100
        return {k: v for k, v in out.items() if v is not None}

    def canary_options(self) -> dict:
        d = self.cleaned_data
        return {"percent": d["canary_percent"], "thresholds": self.thresholds(),
                "window_minutes": d.get("window_minutes") or 5,
                "min_requests": d.get("min_requests") or 20,
                "hold_minutes": d["hold_minutes"] if d.get("hold_minutes") is not None else 30,
                "auto_promote": bool(d.get("auto_promote"))}

    def needs_confirmation(self) -> bool:
        """Every deploy from the page is confirmed first (the confirmation names both versions)."""
        return not self.cleaned_data.get("confirm")


class RollbackForm(forms.Form):
    to = forms.IntegerField(min_value=1, max_value=MAX_ID, required=False, label="Roll back to")
    reason = forms.CharField(max_length=2000, required=False, label="Why")
    next = forms.CharField(max_length=500, required=False)


class BaseModelForm(forms.Form):
    id = forms.SlugField(max_length=100, label="Id")
    path = forms.CharField(max_length=1000, label="Folder on this machine")
    name = forms.CharField(max_length=200, required=False)
