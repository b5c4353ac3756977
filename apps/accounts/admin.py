from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import ApiKey, User


@admin.register(User)
class HubUserAdmin(UserAdmin):
    fieldsets = UserAdmin.fieldsets + (("Training Hub", {"fields": ("role",)}),)
    list_display = ("username", "role", "is_active", "last_login")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "digest")
