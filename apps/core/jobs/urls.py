"""Dashboard URLs of the Jobs page (mounted at /jobs/). Ids use the bounded `id` converter."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.core.jobs import views

register_url_converters()
app_name = "jobs"

urlpatterns = [
    path("", views.jobs_view, name="list"),
    path("<id:job_id>/cancel/", views.job_cancel_view, name="cancel"),
    path("<id:job_id>/retry/", views.job_retry_view, name="retry"),
]
