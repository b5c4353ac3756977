from django import forms


class DeployForm(forms.Form):
    alias = forms.SlugField(max_length=100, initial="production",
                            help_text="e.g. production, staging, haiku (Claude Code's small model)")


class BaseModelForm(forms.Form):
    id = forms.SlugField(max_length=100, label="Id")
    path = forms.CharField(max_length=1000, label="Folder on this machine")
    name = forms.CharField(max_length=200, required=False)
