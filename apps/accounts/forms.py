from django import forms
from django.contrib.auth.forms import AuthenticationForm

from apps.accounts import throttle
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


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")


class UserForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)
    role = forms.ChoiceField(choices=User.Role.choices, initial=User.Role.MEMBER)
