"""Dashboard pages of accounts: API keys (create with limits, edit limits, revoke) and users (admins). Reads go
through selectors."""
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts import key_limits, selectors, services
from apps.accounts.forms import ApiKeyForm, ThrottledAuthenticationForm, UserForm
from apps.accounts.models import User
from apps.core.exceptions import ApplicationError, NotFound
from apps.core.htmx import render_page


NEW_KEY_SESSION = "accounts.new_api_key"


def _form_errors(form, exc: ApplicationError) -> None:
    for err in exc.errors or [{"field": None, "message": exc.message}]:
        form.add_error(err["field"] if err.get("field") in form.fields else None, err["message"])


def _done(request, url_name: str, **kwargs):
    """After a successful POST: redirect (htmx: HX-Redirect, so the whole page reloads)."""
    if getattr(request, "htmx", False):
        resp = HttpResponse(status=204)
        resp["HX-Redirect"] = reverse(url_name, kwargs=kwargs)
        return resp
    return redirect(url_name, **kwargs)


@login_required
def api_keys(request):
    """Create (POST, then redirect: a reload never creates a second key) and list keys (admins: every
    user's). The new key's secret travels to the next GET in the server-side session, which shows it once
    and forgets it. Invalid input: the form again with field errors (422; htmx swaps only the form)."""
    form = ApiKeyForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                created = services.api_key_create(user=request.user, **form.values())
            except ApplicationError as exc:
                _form_errors(form, exc)
                status = exc.status_code
            else:
                request.session[NEW_KEY_SESSION] = {"id": created.api_key.pk, "name": created.api_key.name,
                                                    "plaintext": created.plaintext}
                return _done(request, "accounts:api_keys")
    created = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    keys = list(selectors.api_key_list(user=request.user, everyone=request.user.is_hub_admin))
    usage = selectors.api_key_month_usage(keys)
    rows = [{"key": k, "limits": key_limits.summary(k), "expired": selectors.api_key_expired(k),
             "used": usage.get(k.pk, 0) if k.monthly_tokens else None,
             "used_pct": min(100, round(100 * usage.get(k.pk, 0) / k.monthly_tokens)) if k.monthly_tokens else None,
             "used_label": f"{usage.get(k.pk, 0):,} / {k.monthly_tokens:,} tokens" if k.monthly_tokens else ""}
            for k in keys]
    response = render_page(request, "accounts/api_keys.html", {
        "form": form, "created": created, "rows": rows, "everyone": request.user.is_hub_admin,
    }, partial="key_form" if request.method == "POST" else None, status=status)
    if created:
        response["Cache-Control"] = "no-store"  # the secret must not be replayed from a cache
    return response


@login_required
def api_key_edit(request, key_id: int):
    """Change a key's name and limits. Owners may only tighten them; admins may change anything
    (services.api_key_update). Only the fields that changed are sent to the service."""
    try:
        key = selectors.api_key_get(user=request.user, key_id=key_id)
    except NotFound as exc:
        return render(request, "accounts/api_key_edit.html", {"missing": exc.message}, status=404)
    form = ApiKeyForm(request.POST or None, key=key)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                services.api_key_update(actor=request.user, key_id=key.pk, changes=form.values(changed_only=True))
            except ApplicationError as exc:
                _form_errors(form, exc)
                status = exc.status_code
            else:
                messages.success(request, f"Key {key.name} updated.")
                return _done(request, "accounts:api_keys")
    used = selectors.api_key_month_usage([key]).get(key.pk, 0) if key.monthly_tokens else None
    return render_page(request, "accounts/api_key_edit.html", {
        "form": form, "key": key, "expired": selectors.api_key_expired(key),
        "used_label": f"{used:,} of {key.monthly_tokens:,} tokens used this month (UTC)" if used is not None else "",
        "can_loosen": request.user.is_hub_admin,
    }, partial="key_form" if request.method == "POST" else None, status=status)


class LoginView(auth_views.LoginView):
    """Django's login view (CSRF-protected) with failed attempts throttled per IP and per username:
    a locked client gets the form back with a 429 and a Retry-After header."""

    template_name = "accounts/login.html"
    form_class = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    try:
        services.api_key_revoke(actor=request.user, key_id=key_id)
        messages.success(request, "Key revoked.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:api_keys")


@login_required
def users(request):
    form = UserForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.user_create(actor=request.user, **form.cleaned_data)
                messages.success(request, f"User {form.cleaned_data['username']} created.")
                return redirect("accounts:users")
            except ApplicationError as exc:
                for err in exc.errors or [{"field": None, "message": exc.message}]:
                    form.add_error(err["field"] if err.get("field") in form.fields else None, err["message"])
    status = 200 if request.user.is_hub_admin else 403
    return render(request, "accounts/users.html", {
        "form": form, "users": selectors.user_list(),
        "roles": User.Role.choices,
    }, status=status)


@login_required
@require_POST
def user_role(request, user_id: int):
    try:
        services.user_set_role(actor=request.user, user_id=user_id, role=request.POST.get("role", ""))
        messages.success(request, "Role updated.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:users")
