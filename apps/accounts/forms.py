from django import forms

from apps.accounts.models import User


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")


class UserForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)
    role = forms.ChoiceField(choices=User.Role.choices, initial=User.Role.MEMBER)
