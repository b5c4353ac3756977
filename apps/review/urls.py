"""Dashboard pages of review tasks (mounted at /reviews/). Ids use the bounded `id` converter and turn
positions `index`, so a malformed or out-of-range id is a 404 before any view runs."""
from django.urls import path

from apps.core.inputs import register_url_converters
from apps.review import views

register_url_converters()
app_name = "review"

item = "<id:task_id>/items/<id:item_id>/"

urlpatterns = [
    path("", views.task_list_view, name="list"),
    path("new/", views.task_new_view, name="new"),
    path("<id:task_id>/", views.task_detail_view, name="detail"),
    path("<id:task_id>/review/", views.review_view, name="review"),
    path("<id:task_id>/undo/", views.undo_view, name="undo"),
    path(item + "decide/", views.decide_view, name="decide"),
    path(item + "skip/", views.skip_view, name="skip"),
    path(item + "lease/", views.lease_view, name="lease"),
    path(item + "comments/", views.comment_view, name="comment"),
    path(item + "flags/", views.flag_view, name="flag"),
    path(item + "turns/<index:turn>/", views.turn_view, name="turn"),
    path(item + "turns/<index:turn>/preview/", views.turn_preview_view, name="turn_preview"),
    path("<id:task_id>/agreement/", views.agreement_view, name="agreement"),
    path("<id:task_id>/adjudication/", views.adjudication_list_view, name="adjudication"),
    path("<id:task_id>/adjudication/<id:item_id>/", views.adjudicate_view, name="adjudicate"),
    path("<id:task_id>/bulk/", views.bulk_view, name="bulk"),
    path("<id:task_id>/snapshot/", views.snapshot_view, name="snapshot"),
    path("<id:task_id>/finish/", views.finish_view, name="finish"),
    path("<id:task_id>/export/", views.export_view, name="export"),
    path("<id:task_id>/preference-export/", views.preference_export_view, name="preference_export"),
    path("<id:task_id>/dpo/", views.dpo_view, name="dpo"),
]
