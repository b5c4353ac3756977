from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from apps.accounts import key_limits, throttle
from apps.accounts.models import User


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, refusing a client or a username with too many recent failed attempts
    (apps.accounts.throttle). `retry_after` is set when it refused for that reason."""

    retry_after = 0

    def clean(self):
        ip = self.request.META.get("REMOTE_ADDR") if self.request is not None else None
        username = (self.cleaned_data.get("username") or "").strip().lower() or None
        self.retry_after = throttle.retry_after(throttle.LOGIN, ip=ip, account=username)
        if self.retry_after:
            raise forms.ValidationError(
                f"Too many failed log-in attempts. Try again in {self.retry_after} seconds.", code="throttled")
        try:
            return super().clean()
        except forms.ValidationError:
            throttle.record_failure(throttle.LOGIN, ip=ip, account=username)
            raise


def _limit_field(spec: key_limits.LimitField) -> forms.Field:
    if spec.kind == "names":
        return forms.CharField(label=spec.label, help_text=spec.help, required=False, max_length=20_000,
                               widget=forms.TextInput(attrs={"placeholder": "every one"}))
    if spec.kind == "int":
        return forms.IntegerField(label=spec.label, help_text=spec.help, required=False, min_value=1,
                                  max_value=spec.max, widget=forms.NumberInput(attrs={"placeholder": "unlimited"}))
    return forms.DateTimeField(label=spec.label, help_text=spec.help, required=False,
                               input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
                               widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))


class ApiKeyForm(forms.Form):
    """A key's name and limits (apps.accounts.key_limits.FIELDS). The service validates again; its field
    errors come back onto these fields."""

    name = forms.CharField(max_length=100, initial="default")

    def __init__(self, *args, key=None, **kwargs):
        if key is not None:
            initial = {"name": key.name}
            for spec in key_limits.FIELDS:
                value = getattr(key, spec.name)
                initial[spec.name] = ", ".join(value) if spec.kind == "names" and value else value
            kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        for spec in key_limits.FIELDS:
            self.fields[spec.name] = _limit_field(spec)

    def clean(self):
        """The limits' own rules (key_limits.clean, as the service applies them), so that every field's
        error shows at once; a field whose input did not even parse keeps its own error."""
        cleaned = super().clean()
        present = {n: cleaned[n] for n in key_limits.NAMES if n in cleaned and n not in self.errors}
        if self.initial.get("expires_at") is not None and "expires_at" not in self.changed_data:
            present.pop("expires_at", None)  # an edit that keeps a (possibly past) expiry as it is
        _, errors = key_limits.clean(present, now=timezone.now())
        for err in errors:
            self.add_error(err["field"], err["message"])
        return cleaned

    def limit_fields(self):
        return [self[name] for name in key_limits.NAMES]

    def values(self, *, changed_only: bool = False) -> dict:
        """What to hand to the service: the name and limits (only the changed ones for an edit)."""
        names = ["name", *key_limits.NAMES]
        if changed_only:
            names = [n for n in names if n in self.changed_data]
        return {n: self.cleaned_data[n] for n in names}


class UserForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)
    role = forms.ChoiceField(choices=User.Role.choices, initial=User.Role.MEMBER)
