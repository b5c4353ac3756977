# TEMPORARY stub routes: replaced by the real views.
from django.http import HttpResponse
from django.urls import path

app_name = "datasets"

def _todo(request, **kw):
    return HttpResponse('todo', status=501)

urlpatterns = [
    path("", _todo, name="list"),
    path("<int:dataset_id>/", _todo, name="detail"),
    path("upload/", _todo, name="upload"),
]
