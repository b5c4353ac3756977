from django.contrib import admin

from apps.datasets.models import Dataset, DatasetVersion, Example


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "created_at")
    search_fields = ("name",)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "number", "status", "format", "target", "example_count", "created_at")
    list_filter = ("status", "target")
    readonly_fields = ("content_hash", "validation", "stats", "progress")


@admin.register(Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "version", "index", "split", "category", "token_count", "issues")
    list_filter = ("split",)
