"""Dashboard pages of accounts: API keys (create, revoke) and users (admins). Reads go through selectors."""
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import selectors, services
from apps.accounts.forms import ApiKeyForm, ThrottledAuthenticationForm, UserForm
from apps.accounts.models import User
from apps.core.exceptions import ApplicationError


NEW_KEY_SESSION = "accounts.new_api_key"


@login_required
def api_keys(request):
    """Create (POST, then redirect: a reload never creates a second key) and list keys. The new key's
    secret travels to the next GET in the server-side session, which shows it once and forgets it."""
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        created = services.api_key_create(user=request.user, name=form.cleaned_data["name"])
        request.session[NEW_KEY_SESSION] = {"id": created.api_key.pk, "name": created.api_key.name,
                                            "plaintext": created.plaintext}
        return redirect("accounts:api_keys")
    created = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    response = render(request, "accounts/api_keys.html", {
        "form": form, "created": created, "keys": selectors.api_key_list(user=request.user),
    }, status=422 if request.method == "POST" else 200)
    if created:
        response["Cache-Control"] = "no-store"  # the secret must not be replayed from a cache
    return response


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
