"""Dashboard pages of blind arenas (mounted at /arenas/). Ids use the bounded `id` converter, so a malformed or
out-of-range id is a 404 before any view runs."""
from django.urls import path

from apps.arena import views
from apps.core.inputs import register_url_converters

register_url_converters()
app_name = "arena"

urlpatterns = [
    path("", views.arena_list_view, name="list"),
    path("new/", views.arena_new_view, name="new"),
    path("<id:arena_id>/", views.arena_detail_view, name="detail"),
    path("<id:arena_id>/vote/", views.vote_view, name="vote"),
    path("<id:arena_id>/vote/<id:match_id>/", views.vote_action_view, name="vote_action"),
    path("<id:arena_id>/vote/<id:match_id>/skip/", views.skip_view, name="skip"),
    path("<id:arena_id>/results/", views.results_view, name="results"),
    path("<id:arena_id>/items/<id:item_id>/", views.item_view, name="item"),
    path("<id:arena_id>/close/", views.close_view, name="close"),
    path("<id:arena_id>/cancel/", views.cancel_view, name="cancel"),
    path("<id:arena_id>/judge/", views.judge_view, name="judge"),
    path("<id:arena_id>/export/", views.export_view, name="export"),
    path("<id:arena_id>/dpo/", views.dpo_view, name="dpo"),
]
