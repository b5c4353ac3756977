"""Dashboard pages of accounts: login, API keys, users. Ids in paths use the bounded `id` converter."""
from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts import views
from apps.core.inputs import register_url_converters

register_url_converters()
app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/<id:key_id>/", views.api_key_edit, name="api_key_edit"),
    path("api-keys/<id:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("users/", views.users, name="users"),
    path("users/<id:user_id>/role/", views.user_role, name="user_role"),
]
