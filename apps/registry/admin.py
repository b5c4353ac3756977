from django.contrib import admin

from apps.registry.models import Alias, BaseModel, Deployment, ModelVersion


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "architecture", "parameters", "is_default")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "kind", "base_model", "final_loss", "created_at")
    list_filter = ("kind",)


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ("name", "model_version", "updated_by", "updated_at")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("alias_name", "action", "model_version", "previous_version", "actor", "created_at")
