from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import services
from apps.accounts.forms import ApiKeyForm, UserForm
from apps.accounts.models import User
from apps.core.exceptions import ApplicationError


@login_required
def api_keys(request):
    created = None
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        created = services.api_key_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiKeyForm()
    return render(request, "accounts/api_keys.html", {
        "form": form, "created": created, "keys": request.user.api_keys.all(),
    })


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
        "form": form, "users": User.objects.order_by("username"),
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
