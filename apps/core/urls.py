from django.urls import include, path

from apps.core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("jobs/", include("apps.core.jobs.urls")),
    path("favicon.ico", views.favicon, name="favicon"),
]
