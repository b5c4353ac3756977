# TEMPORARY stub routes: replaced by the real views.
from django.http import HttpResponse
from django.urls import path

app_name = "proxy"

def _todo(request, **kw):
    return HttpResponse('todo', status=501)

urlpatterns = [
    path("playground/", _todo, name="playground"),
]
