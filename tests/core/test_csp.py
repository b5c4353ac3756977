"""The Content-Security-Policy header, and templates that can live under it (no browser: see
test_csp_browser.py for every page in chromium)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

TEMPLATES = Path(settings.BASE_DIR) / "templates"
STATIC_JS = Path(settings.BASE_DIR) / "static" / "js"


def _directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


@pytest.mark.django_db
def test_every_html_response_carries_the_strict_policy(client, member):
    client.force_login(member)
    for path in ("/accounts/login/", "/", "/datasets/", "/runs/", "/models/", "/v1/playground/"):
        r = client.get(path)
        assert r.status_code == 200, path
        d = _directives(r["Content-Security-Policy"])
        assert d["default-src"] == ["'self'"]
        assert d["script-src"] == ["'self'"], "no 'unsafe-inline' and no 'unsafe-eval' for scripts"
        assert d["style-src"] == ["'self'"], "no 'unsafe-inline' for styles"
        assert d["img-src"] == ["'self'", "data:"]
        assert d["object-src"] == ["'none'"] and d["frame-ancestors"] == ["'none'"]
        assert d["base-uri"] == ["'self'"] and d["form-action"] == ["'self'"]
        # the run page's websocket: same host and port, both schemes
        assert d["connect-src"] == ["'self'", "ws://testserver", "wss://testserver"]


@pytest.mark.django_db
def test_websocket_sources_follow_the_requests_host_and_port(client, settings):
    settings.ALLOWED_HOSTS = ["hub.example.com"]
    r = client.get("/accounts/login/", HTTP_HOST="hub.example.com:8443")
    assert _directives(r["Content-Security-Policy"])["connect-src"] == [
        "'self'", "ws://hub.example.com:8443", "wss://hub.example.com:8443"]


@pytest.mark.django_db
def test_a_disallowed_host_gets_the_policy_without_echoing_the_host(client, settings):
    settings.ALLOWED_HOSTS = ["hub.example.com"]
    r = client.get("/accounts/login/", HTTP_HOST="evil.example.net")
    assert r.status_code == 400
    header = r["Content-Security-Policy"]
    assert "evil" not in header and _directives(header)["connect-src"] == ["'self'"]


def _uncached(request, response) -> str:
    """What django-csp itself builds for this request and response (no cache)."""
    from csp.utils import build_policy
    from dataclasses import asdict

    from apps.core.csp import CSPMiddleware

    return build_policy(**asdict(CSPMiddleware(lambda r: response).get_policy_parts(request=request, response=response)))


def test_cached_policies_equal_django_csps_and_follow_the_host_and_the_settings(rf, settings):
    from django.http import HttpResponse

    from apps.core import csp

    settings.ALLOWED_HOSTS = ["a.example", "b.example"]
    csp._POLICIES.clear()
    mw = csp.CSPMiddleware(lambda r: HttpResponse())
    for host in ("a.example", "b.example", "a.example"):
        request = rf.get("/v1/models", HTTP_HOST=host)
        response = mw.process_response(request, HttpResponse())
        assert response["Content-Security-Policy"] == _uncached(request, HttpResponse())
        assert f"ws://{host}" in response["Content-Security-Policy"]
    assert set(csp._POLICIES) == {"a.example", "b.example"}

    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}  # a setting change: rebuilt
    assert not csp._POLICIES
    response = mw.process_response(rf.get("/", HTTP_HOST="a.example"), HttpResponse())
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_response_with_its_own_policy_or_a_nonce_is_not_cached(rf, settings):
    from django.http import HttpResponse

    from apps.core import csp

    settings.ALLOWED_HOSTS = ["a.example"]
    mw = csp.CSPMiddleware(lambda r: HttpResponse())
    csp._POLICIES.clear()
    updated = HttpResponse()
    updated._csp_update = {"img-src": ["https://img.example"]}  # what @csp_update sets
    header = mw.process_response(rf.get("/", HTTP_HOST="a.example"), updated)["Content-Security-Policy"]
    assert "https://img.example" in header and not csp._POLICIES
    plain = mw.process_response(rf.get("/", HTTP_HOST="a.example"), HttpResponse())["Content-Security-Policy"]
    assert "https://img.example" not in plain

    csp._POLICIES["a.example"] = ("default-src 'none'", "")  # a cached value the next request must not use
    request = rf.get("/", HTTP_HOST="a.example")
    mw.process_request(request)
    str(request.csp_nonce)  # a template asked for a nonce: django-csp builds this response's header itself
    header = mw.process_response(request, HttpResponse())["Content-Security-Policy"]
    assert header == _uncached(request, HttpResponse()) and "default-src 'self'" in header


_TAG = re.compile(r"<([a-zA-Z][\w-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.S)
_HANDLER = re.compile(r"(?:^|\s)(on[a-z]+|hx-on[\w:.-]*)\s*=", re.I)
_STYLE_ATTR = re.compile(r"(?:^|\s)style\s*=", re.I)


def _inline_code(html: str) -> list[str]:
    """Everything a strict CSP blocks: inline <script> (other than JSON data blocks), <style> elements,
    style="" attributes, on*= handlers, hx-on (evaluated by htmx), javascript: URLs."""
    found = []
    for m in _TAG.finditer(html):
        tag, attrs = m.group(1).lower(), m.group(2)
        if tag == "script" and "src=" not in attrs and 'type="application/json"' not in attrs:
            found.append(f"inline script: {m.group(0)[:80]}")
        if tag == "style":
            found.append("<style> element")
        if _HANDLER.search(attrs):
            found.append(f"event handler: {m.group(0)[:80]}")
        if _STYLE_ATTR.search(attrs):
            found.append(f"style attribute: {m.group(0)[:80]}")
        if "javascript:" in attrs.lower():
            found.append(f"javascript: URL: {m.group(0)[:80]}")
    return found


def test_the_inline_code_finder_finds_what_the_policy_blocks():
    assert _inline_code('<script>alert(1)</script><script src="/a.js"></script>') == ["inline script: <script>"]
    assert _inline_code('<script type="application/json" id="x">{}</script>') == []
    assert len(_inline_code('<select onchange="this.form.submit()">')) == 1
    assert len(_inline_code('<div hx-on::after-request="x()">')) == 1
    assert len(_inline_code('<p style="color:red">')) == 1
    assert len(_inline_code('<a href="javascript:void(0)">')) == 1
    assert _inline_code('<div class="x" data-style="a" data-on="b" title="on=1">') == []


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")))
def test_templates_hold_no_inline_code(template):
    assert _inline_code((TEMPLATES / template).read_text()) == []


def test_page_scripts_are_static_files_that_exist():
    for template in TEMPLATES.rglob("*.html"):
        for name in re.findall(r"""\{% static ['"](js/[^'"]+)['"] %\}""", template.read_text()):
            assert (STATIC_JS.parent / name).is_file(), f"{template.name} loads a missing {name}"


@pytest.mark.django_db
def test_the_run_page_passes_its_data_without_inline_script(client, member, tiny_base_model):
    from apps.training.models import MetricPoint, TrainingRun
    from tests.training.conftest import make_version

    version = make_version(member, [{"messages": [{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "hello"}]}] * 4)
    run = TrainingRun.objects.create(owner=member, dataset_version=version, status="succeeded",
                                     base_model=tiny_base_model)
    MetricPoint.objects.create(run=run, step=1, kind="train", values={"loss": 1.5})
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert _inline_code(html) == []
    assert f'id="loss-chart" class="chart" data-run-id="{run.pk}"' in html
    assert '<script id="run-curves" type="application/json">{"train": {"x": [1], "y": [1.5]}' in html
    assert 'id="plotly.js-style-global" class="no-inline-styles"' in html
