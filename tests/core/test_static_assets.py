"""Static files: collected under content-hashed names with gzip and brotli copies, served by whitenoise
with a far-future immutable cache; pages still work where collectstatic has not run; plotly's stylesheet
(static/css/plotly.css, for the strict CSP) matches the vendored bundle."""
from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import brotli
import pytest
from django.conf import settings
from django.core.management import call_command
from django.template import Context, Template
from django.test import Client

STATIC = Path(settings.BASE_DIR) / "static"
PLOTLY = "vendor/plotly-basic.min.js"


def _plotly_rules(bundle: str) -> list[str]:
    """The global rules plotly would inject (src/build/plotcss.js), in the order they end up in its sheet."""
    start = bundle.index('{"X,X div"')
    end = bundle.index("}", start)
    pairs = re.findall(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_$][\w$]*)\s*:\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""",
                       bundle[start:end + 1])
    rules = []
    for key, value in pairs:
        selector = key.strip("\"'").replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        rules.append(selector + "{" + value[1:-1] + "}")
    return rules[::-1]  # each one is inserted at index 0


def test_plotly_stylesheet_matches_the_vendored_bundle():
    rules = _plotly_rules((STATIC / PLOTLY).read_text())
    assert len(rules) > 50 and ".js-plotly-plot .plotly .main-svg{position:absolute;top:0;left:0;pointer-events:none;}" in rules
    css = (STATIC / "css" / "plotly.css").read_text()
    ours = [line for line in css.split("*/", 1)[1].splitlines() if line.strip()]
    assert ours == rules, "plotly was updated: regenerate static/css/plotly.css from its plotcss rules"


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """`collectstatic` of the project's own static/ (not the admin's and django-ninja's, to keep it short)
    into a temporary STATIC_ROOT, with the project's storage."""
    from django.test import override_settings

    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(STATIC_ROOT=root,
                           STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"]):
        call_command("collectstatic", "--noinput", "-v", "0")
        yield root


def test_collectstatic_writes_hashed_compressed_copies(collected):
    from django.contrib.staticfiles.storage import staticfiles_storage

    assert settings.STORAGES["staticfiles"]["BACKEND"] == "apps.core.staticfiles.HubStaticFilesStorage"
    url = Template("{% load static %}{% static '" + PLOTLY + "' %}").render(Context())
    assert re.fullmatch(r"/static/vendor/plotly-basic\.min\.[0-9a-f]{12}\.js", url), url
    hashed = collected / url.removeprefix("/static/")
    original = (STATIC / PLOTLY).read_bytes()
    assert hashed.read_bytes() == original
    assert gzip.decompress(hashed.with_name(hashed.name + ".gz").read_bytes()) == original
    assert brotli.decompress(hashed.with_name(hashed.name + ".br").read_bytes()) == original
    assert not (collected / PLOTLY).exists(), "only the hashed names are kept (the finders serve the plain ones)"
    assert staticfiles_storage.url("css/plotly.css") != "/static/css/plotly.css"


@pytest.mark.django_db
@pytest.mark.parametrize("encoding, expected", [("br, gzip", "br"), ("gzip, deflate", "gzip"), ("", None)])
def test_whitenoise_serves_hashed_files_compressed_and_immutable(collected, encoding, expected):
    url = Template("{% load static %}{% static '" + PLOTLY + "' %}").render(Context())
    r = Client().get(url, HTTP_ACCEPT_ENCODING=encoding)
    assert r.status_code == 200
    body = b"".join(r.streaming_content)
    assert r.get("Content-Encoding") == expected
    assert r["Cache-Control"] == "max-age=315360000, public, immutable"
    size = (STATIC / PLOTLY).stat().st_size
    if expected == "br":
        assert len(body) < size / 3 and brotli.decompress(body) == (STATIC / PLOTLY).read_bytes()
    elif expected == "gzip":
        assert len(body) < size / 2
    else:
        assert len(body) == size


@pytest.mark.django_db
def test_pages_work_where_collectstatic_has_not_run(tmp_path, settings, caplog, member):
    """No manifest: Django's manifest storage raises on every {% static %} (every page a 500); this one
    renders the plain name, logs how to fix it, and whitenoise serves the file from the finders."""
    from django.contrib.staticfiles.storage import staticfiles_storage
    from whitenoise.storage import CompressedManifestStaticFilesStorage

    settings.STATIC_ROOT = tmp_path / "empty"
    with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
        CompressedManifestStaticFilesStorage().url("css/hub.css")
    with caplog.at_level(logging.WARNING, logger="apps.core.staticfiles"):
        assert staticfiles_storage.url("css/hub.css") == "/static/css/hub.css"
    assert "collectstatic" in caplog.text
    client = Client()
    client.force_login(member)
    page = client.get("/runs/")
    assert page.status_code == 200 and b'href="/static/css/hub.css"' in page.content
    css = client.get("/static/css/hub.css")
    assert css.status_code == 200 and b".card" in b"".join(css.streaming_content)


@pytest.mark.django_db
def test_whitenoise_s_start_up_guesses_do_not_warn(collected, caplog, tmp_path):
    """With a manifest, whitenoise's middleware asks the storage for the "unhashed" name of every file with a
    dot in its stem (vendor/htmx.min.js -> vendor/htmx.js) to tell immutable files apart: `make run` logged a
    "not in the collected manifest ... run collectstatic" warning for each, right after collectstatic. Only a
    real file missing from the manifest warns."""
    from django.test import override_settings
    from whitenoise.middleware import WhiteNoiseMiddleware

    from apps.core.staticfiles import HubStaticFilesStorage

    later = tmp_path / "later"
    (later / "css").mkdir(parents=True)
    (later / "css" / "added-after-collectstatic.css").write_text(".x{}")
    with override_settings(STATIC_ROOT=collected, STATICFILES_DIRS=[*settings.STATICFILES_DIRS, later],
                           STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"]), \
            caplog.at_level(logging.WARNING, logger="apps.core.staticfiles"):
        storage = HubStaticFilesStorage()
        WhiteNoiseMiddleware(lambda request: None)
        assert storage.url("vendor/htmx.js") == "/static/vendor/htmx.js"  # no such file: the name, quietly
        assert "not in the collected manifest" not in caplog.text
        assert storage.url("css/added-after-collectstatic.css") == "/static/css/added-after-collectstatic.css"
        assert "'css/added-after-collectstatic.css' is not in the collected manifest" in caplog.text
