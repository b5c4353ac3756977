"""Issue 14, polish: the `num` and `show` template filters (apps/core/templatetags/hub_format.py): thousands
separators, and config values in words instead of Python reprs."""
import pytest
from django.template import Context, Template

from apps.core.templatetags.hub_format import num, show


@pytest.mark.parametrize("value,expected", [
    (0, "0"), (999, "999"), (1234, "1,234"), (1234567, "1,234,567"), (-98765, "-98,765"),
    (1234.0, "1,234"), (1234.5678, "1,234.57"), (0.5, "0.5"), ("8192", "8,192"), ("12345.5", "12,345.5"),
    (None, "—"), ("", "—"), ("n/a", "n/a"), (True, True),
])
def test_num(value, expected):
    assert num(value) == expected


def test_num_with_decimals():
    assert num(1234.5, 2) == "1,234.50" and num(3, 1) == "3.0"


@pytest.mark.parametrize("value,expected", [
    (None, "—"), ("", "—"), (True, "yes"), (False, "no"), (["a", "b"], "a, b"), ([], "—"), (("q", "v"), "q, v"),
    ({"lr": 0.0001, "on": True}, "lr: 0.0001, on: yes"), ({}, "—"), (3, "3"), (123456, "123,456"),
    (2e-05, "2e-05"), (0.1 + 0.2, "0.3"), ("text", "text"), ([None, 1], "—, 1"),
])
def test_show(value, expected):
    assert show(value) == expected


def test_filters_in_a_template_escape_and_never_show_reprs():
    t = Template("{% load hub_format %}{{ a|show }}|{{ b|show }}|{{ c|num }}|{{ d|show }}")
    out = t.render(Context({"a": None, "b": ["<x>", "y"], "c": 1_000_000, "d": False}))
    assert out == "—|&lt;x&gt;, y|1,000,000|no"
    assert "None" not in out and "[" not in out


def test_target_names_a_version_by_its_page_and_a_provider_by_its_model():
    from apps.core.templatetags.hub_format import target

    assert target("version:12") == '<a href="/models/12/">mv-12</a>'
    assert target("provider:openrouter/qwen-2.5-7b") == "openrouter · qwen-2.5-7b"
    assert target("provider:<b>/x&y") == "&lt;b&gt; · x&amp;y"  # escaped
    assert target("") == "—" and target(None) == "—"
    assert target("version:1e3") == "version:1e3"  # not an id: shown as it is (and escaped by the template)
