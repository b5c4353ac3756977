"""Small helpers for htmx requests (django-htmx sets request.htmx)."""
from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import render


def render_page(request: HttpRequest, template: str, context: dict, *, partial: str | None = None, status: int = 200):
    """Render a whole page, or only its named partial when htmx asks for it."""
    if partial and getattr(request, "htmx", False):
        return render(request, f"{template}#{partial}", context, status=status)
    return render(request, template, context, status=status)
