"""Forms of the experiments pages: a new experiment (alias, up to MAX_FORM_ARMS arms, sticky key, metric) and the
admin actions (stop, promote, roll back) with a reason."""
from __future__ import annotations

from django import forms

from apps.experiments.models import Experiment

MAX_FORM_ARMS = 4


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    alias = forms.ChoiceField(choices=())
    sticky_by = forms.ChoiceField(choices=Experiment.StickyBy.choices, initial="session",
                                  label="Sticky by")
    metric = forms.ChoiceField(choices=Experiment.Metric.choices, initial="feedback", label="Primary metric")

    def __init__(self, *args, aliases=(), versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["alias"].choices = [(a, a) for a in aliases]
        version_choices = [("", "—")] + [(str(v.pk), f"mv-{v.pk} · {v.name}") for v in versions]
        for i in range(MAX_FORM_ARMS):
            self.fields[f"arm_version_{i}"] = forms.ChoiceField(choices=version_choices, required=i < 2,
                                                                label=f"Arm {'ABCD'[i]}{' (control)' if i == 0 else ''}")
            self.fields[f"arm_weight_{i}"] = forms.IntegerField(min_value=0, max_value=10_000, required=False,
                                                                initial=50 if i < 2 else None, label="Weight")

    def arm_rows(self):
        """[(label, version field, weight field)] for the template."""
        return [(self[f"arm_version_{i}"].label, self[f"arm_version_{i}"], self[f"arm_weight_{i}"])
                for i in range(MAX_FORM_ARMS)]

    def arms(self) -> list[dict]:
        out = []
        for i in range(MAX_FORM_ARMS):
            version = self.cleaned_data.get(f"arm_version_{i}")
            if version:
                weight = self.cleaned_data.get(f"arm_weight_{i}")
                out.append({"model_version_id": int(version), "weight": 0 if weight is None else weight})
        return out

    def add_service_error(self, field: str | None, message: str) -> None:
        """A service field error (`arms.1.weight`) on the form field that shows it (`arm_weight_1`)."""
        parts = (field or "").split(".")
        if len(parts) == 3 and parts[0] == "arms" and parts[1].isascii() and parts[1].isdigit():
            name = f"arm_{'version' if parts[2] == 'model_version_id' else 'weight'}_{self._row(int(parts[1]))}"
        else:
            name = field if field in self.fields else None
        self.add_error(name, message)

    def _row(self, arm_index: int) -> int:
        """The form row of the arm_index-th filled arm (empty rows are skipped when arms are built)."""
        filled = [i for i in range(MAX_FORM_ARMS) if self.cleaned_data.get(f"arm_version_{i}")]
        return filled[arm_index] if arm_index < len(filled) else 0


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("stop", "stop"), ("promote", "promote"), ("rollback", "rollback")])
    arm = forms.CharField(max_length=16, required=False)
    reason = forms.CharField(max_length=2000, required=False)
