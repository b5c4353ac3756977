"""Forms of the sources pages: a new source (path / URL / archive), the component rules, the generation
options. Services check everything again; their field errors come back through `add_service_errors`."""
from __future__ import annotations

from django import forms

from apps.sources.services.options import DEFAULT_MAX, MAX_MAX


RULES_PLACEHOLDER = "actions: glob src/actions/**\nservices: regex class \\w+Service\\b"


class _ServiceErrors:
    # service field names that a form shows under another field
    aliases: dict[str, str] = {}

    def add_service_errors(self, exc) -> None:
        shown = False
        for e in exc.errors or []:
            field = self.aliases.get(e.get("field"), e.get("field"))
            if field in self.fields:
                self.add_error(field, e["message"])
                shown = True
        if not shown:
            self.add_error(None, exc.message)


class SourceForm(_ServiceErrors, forms.Form):
    aliases = {"repos": "location"}

    kind = forms.ChoiceField(choices=[("path", "Local path"), ("url", "Git URL"), ("archive", "Upload an archive")],
                             initial="path", widget=forms.RadioSelect)
    name = forms.CharField(required=False, max_length=200,
                           help_text="Default: the folder's or repository's name.")
    location = forms.CharField(required=False, max_length=2000, label="Folder or URL",
                               widget=forms.TextInput(attrs={"placeholder": "/home/me/code/project  or  "
                                                                            "https://github.com/org/project.git",
                                                             "autocomplete": "off"}))
    plugins = forms.CharField(required=False, label="Plugin repositories (URLs, one per line)",
                              widget=forms.Textarea(attrs={"rows": 3,
                                                           "placeholder": "https://github.com/org/plugin-a.git"}))
    archive = forms.FileField(required=False, label="Zip or tar of a working tree",
                              help_text="Checked for path traversal and outside symlinks before anything is kept.")
    rules = forms.CharField(required=False, label="Framework components (optional)",
                            widget=forms.Textarea(attrs={"rows": 3, "placeholder": RULES_PLACEHOLDER}),
                            help_text="One per line: `name: glob PATTERN` (on paths) or `name: regex PATTERN` "
                                      "(on content).")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        for key in ("name", "location", "plugins", "rules"):
            if "\x00" in (data.get(key) or ""):
                self.add_error(key, "Must not contain NUL bytes.")
        kind = data.get("kind")
        if kind in ("path", "url") and not (data.get("location") or "").strip():
            self.add_error("location", "Give the folder's absolute path." if kind == "path" else "Give the git URL.")
        if kind == "archive" and not data.get("archive"):
            self.add_error("archive", "Choose a zip or tar archive.")
        return data


class RulesForm(_ServiceErrors, forms.Form):
    rules = forms.CharField(required=False, label="Framework components",
                            widget=forms.Textarea(attrs={"rows": 4}),
                            help_text="One per line: `name: glob PATTERN` or `name: regex PATTERN`. Counted at the "
                                      "next analysis.")


class OptionsForm(_ServiceErrors, forms.Form):
    aliases = {"teacher.endpoint": "teacher", "teacher.model": "teacher_model",
               "teacher.provider_id": "teacher_provider", "teacher.temperature": "temperature",
               "teacher.requests_per_minute": "requests_per_minute", "teacher.price_in_per_mtok": "price_in",
               "teacher.price_out_per_mtok": "price_out"}

    generators = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple, required=False)
    max_examples = forms.IntegerField(min_value=1, max_value=MAX_MAX, initial=DEFAULT_MAX, label="Max scenarios")
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0,
                              help_text="Same seed, same commit: the same scenarios.")
    include_tests = forms.BooleanField(required=False, initial=True, label="Include tests")
    include_config = forms.BooleanField(required=False, label="Include config")
    exclude_complex = forms.BooleanField(required=False, label="Exclude complex")
    run_tests = forms.BooleanField(required=False, label="Run the tests to confirm mutated bugs",
                                   help_text="This executes the repository's code (on the worker, in a sandboxed "
                                             "subprocess with a timeout). Only opt in for code you trust.")
    test_command = forms.CharField(required=False, max_length=1000,
                                   widget=forms.TextInput(attrs={"placeholder": "python -m pytest -x -q"}))
    test_timeout = forms.IntegerField(min_value=1, max_value=3600, initial=60, label="Test timeout (s)")
    max_test_runs = forms.IntegerField(min_value=1, max_value=1000, initial=50, label="Max test runs")
    teacher = forms.ChoiceField(choices=[("", "none"), ("hub", "this hub's /v1"), ("provider", "a provider")],
                                required=False, label="Teacher model")
    teacher_model = forms.CharField(required=False, max_length=200, label="Teacher alias / model",
                                    widget=forms.TextInput(attrs={"placeholder": "production"}))
    teacher_provider = forms.TypedChoiceField(choices=(), required=False, coerce=int, empty_value=None,
                                              label="Provider")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=0.2, required=False)
    requests_per_minute = forms.IntegerField(min_value=1, max_value=10_000, initial=30, required=False,
                                             label="Requests per minute")
    price_in = forms.FloatField(min_value=0, max_value=1000, initial=0, required=False, label="Input $/M tokens")
    price_out = forms.FloatField(min_value=0, max_value=1000, initial=0, required=False, label="Output $/M tokens")

    def __init__(self, *args, generators=(), providers=(), **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["generators"].choices = [(g, label) for g, label in generators]
        self.fields["teacher_provider"].choices = [("", "—")] + [(p.pk, p.name) for p in providers]

    def clean(self):
        data = super().clean()
        if "\x00" in (data.get("test_command") or "") or "\x00" in (data.get("teacher_model") or ""):
            self.add_error(None, "Fields must not contain NUL bytes.")
        return data

    def options(self) -> dict:
        """The cleaned form as the service's options."""
        d = self.cleaned_data
        out = {k: d.get(k) for k in ("max_examples", "seed", "include_tests", "include_config", "exclude_complex",
                                     "run_tests", "test_command", "test_timeout", "max_test_runs")}
        out["generators"] = d.get("generators") or None
        if d.get("teacher"):
            out["teacher"] = {"endpoint": d["teacher"], "model": d.get("teacher_model") or "",
                              "provider_id": d.get("teacher_provider"), "temperature": d.get("temperature"),
                              "requests_per_minute": d.get("requests_per_minute"),
                              "price_in_per_mtok": d.get("price_in"), "price_out_per_mtok": d.get("price_out")}
        return out
