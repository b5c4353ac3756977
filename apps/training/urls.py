# TEMPORARY stub routes: replaced by the real views.
from django.http import HttpResponse
from django.urls import path

app_name = "training"

def _todo(request, **kw):
    return HttpResponse('todo', status=501)

urlpatterns = [
    path("", _todo, name="list"),
    path("new/", _todo, name="new"),
    path("<int:run_id>/", _todo, name="detail"),
]
