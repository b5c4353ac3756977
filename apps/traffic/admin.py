from django.contrib import admin

from apps.traffic.models import CaptureRule, TrafficExport


@admin.register(CaptureRule)
class CaptureRuleAdmin(admin.ModelAdmin):
    list_display = ("pattern", "percentage", "dataset", "enabled", "only_successful", "owner", "captured",
                    "last_cut_at")
    list_filter = ("enabled",)


@admin.register(TrafficExport)
class TrafficExportAdmin(admin.ModelAdmin):
    list_display = ("created_at", "source", "dataset", "version", "owner", "rule")
    list_filter = ("source",)
