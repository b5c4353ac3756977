"""Dashboard forms for providers and alias chains. They only shape input: the services (apps.proxy.providers)
validate and answer field errors, which the views put back on these forms."""
from __future__ import annotations

import re

from django import forms

from apps.proxy.models import Provider
from apps.proxy.providers import MAX_TARGETS

_VERSION = re.compile(r"^(?:version:|mv-)?([0-9]{1,18})$")


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. openrouter (used in target names: openrouter/MODEL)")
    kind = forms.ChoiceField(choices=[("openai", "OpenAI-compatible (vLLM, llama.cpp, OpenAI, Together, "
                                                  "OpenRouter, Gemini, …)"), ("anthropic", "Anthropic Messages")])
    base_url = forms.CharField(max_length=500, label="Base URL",
                               help_text="OpenAI-compatible: up to /v1 (https://api.openai.com/v1); "
                                         "Anthropic: https://api.anthropic.com")
    api_key = forms.CharField(max_length=4000, required=False, label="API key",
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                              help_text="stored encrypted, never shown again")
    remove_key = forms.BooleanField(required=False, label="Remove the stored key")
    connect_s = forms.FloatField(required=False, label="Connect timeout (s)")
    first_byte_s = forms.FloatField(required=False, label="First-byte timeout (s)")
    total_s = forms.FloatField(required=False, label="Total timeout (s)")
    max_concurrency = forms.IntegerField(required=False, label="Concurrency cap",
                                         help_text="requests in flight per web process; empty: no cap")
    context_length = forms.IntegerField(required=False, label="Context length (tokens)",
                                        help_text="longer prompts skip this provider; empty: unknown")
    enabled = forms.BooleanField(required=False, initial=True)

    @classmethod
    def for_provider(cls, p: Provider) -> "ProviderForm":
        return cls(initial={"name": p.name, "kind": p.kind, "base_url": p.base_url, "connect_s": p.connect_timeout_s,
                            "first_byte_s": p.first_byte_timeout_s, "total_s": p.total_timeout_s,
                            "max_concurrency": p.max_concurrency, "context_length": p.context_length,
                            "enabled": p.enabled})

    def service_kwargs(self, *, editing: bool) -> dict:
        d = self.cleaned_data
        timeouts = {k: d[k] for k in ("connect_s", "first_byte_s", "total_s") if d.get(k) is not None}
        out = {"name": d["name"].strip(), "kind": d["kind"], "base_url": d["base_url"], "timeouts": timeouts,
               "max_concurrency": d.get("max_concurrency"), "context_length": d.get("context_length"),
               "enabled": bool(d.get("enabled"))}
        if not editing:
            out["api_key"] = d.get("api_key") or None
        elif d.get("remove_key"):
            out["api_key"] = None
        elif d.get("api_key"):
            out["api_key"] = d["api_key"]
        return out


def parse_target(text: str) -> dict:
    """`version:12`, `mv-12` or `12` -> a model version; `provider:NAME/MODEL` or `NAME/MODEL` -> a
    provider's model (the model id may itself contain `/`)."""
    text = text.strip()
    m = _VERSION.match(text)
    if m:
        return {"model_version_id": int(m.group(1))}
    if text.startswith("provider:"):
        text = text[len("provider:"):]
    name, sep, model = text.partition("/")
    if not sep:
        return {"provider": name, "model": ""}
    return {"provider": name, "model": model}


class ChainForm(forms.Form):
    temperature = forms.FloatField(required=False, help_text="used when a request sets none (0–2)")
    max_tokens = forms.IntegerField(required=False, label="Max tokens (cap)",
                                    help_text="a request asking for more gets this many")
    timeout_s = forms.FloatField(required=False, label="Timeout per target (s)",
                                 help_text="to the first byte and in total")
    system_prefix = forms.CharField(required=False, label="System prompt prefix",
                                    widget=forms.Textarea(attrs={"rows": 3}))
    limit_tools = forms.BooleanField(required=False, label="Only these tools reach the model")
    tools_allow = forms.CharField(required=False, label="Allowed tools (one per line)",
                                  widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(MAX_TARGETS):
            self.fields[f"target_{i}"] = forms.CharField(
                required=False, max_length=420, label=f"Target {i + 1}",
                widget=forms.TextInput(attrs={"list": "target-choices", "autocomplete": "off",
                                              "placeholder": "version:12 or provider/model" if i == 0 else ""}))

    @property
    def target_fields(self):
        return [self[f"target_{i}"] for i in range(MAX_TARGETS)]

    @classmethod
    def for_chain(cls, chain: dict | None) -> "ChainForm":
        initial = {}
        if chain is not None:
            s = chain["settings"]
            initial = {"temperature": s["temperature"], "max_tokens": s["max_tokens"], "timeout_s": s["timeout_s"],
                       "system_prefix": s["system_prefix"], "limit_tools": s["tools_allow"] is not None,
                       "tools_allow": "\n".join(s["tools_allow"] or [])}
            if chain["configured"]:
                for i, t in enumerate(chain["targets"]):
                    initial[f"target_{i}"] = t["label"]
        return cls(initial=initial)

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        targets = [parse_target(d[f"target_{i}"]) for i in range(MAX_TARGETS) if (d.get(f"target_{i}") or "").strip()]
        tools = None
        if d.get("limit_tools"):
            tools = [t.strip() for t in re.split(r"[\n,]", d.get("tools_allow") or "") if t.strip()]
        return {"targets": targets, "settings": {
            "temperature": d.get("temperature"), "max_tokens": d.get("max_tokens"), "timeout_s": d.get("timeout_s"),
            "system_prefix": d.get("system_prefix") or "", "tools_allow": tools}}

    def add_service_errors(self, errors: list[dict]) -> None:
        """Map the service's field names (`targets.2.model`, `settings.max_tokens`) onto this form."""
        filled = [i for i in range(MAX_TARGETS) if (self.cleaned_data.get(f"target_{i}") or "").strip()]
        for e in errors:
            field = e.get("field") or ""
            m = re.match(r"^targets\.(\d+)", field)
            if m and int(m.group(1)) < len(filled):
                self.add_error(f"target_{filled[int(m.group(1))]}", e["message"])
            elif field.startswith("settings."):
                name = field.split(".", 1)[1]
                self.add_error(name if name in self.fields else None, e["message"])
            else:
                self.add_error(None, e["message"])
