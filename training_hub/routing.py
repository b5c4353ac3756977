from django.urls import path

from apps.arena.consumers import ArenaConsumer  # blind arenas (issue 11)
from apps.review.consumers import ReviewConsumer
from apps.sources.consumers import SourceJobConsumer
from apps.training.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    path("ws/reviews/<int:task_id>/", ReviewConsumer.as_asgi()),
    path("ws/sources/jobs/<int:job_id>/", SourceJobConsumer.as_asgi()),  # analyses, generations (issue 10)
    path("ws/arenas/<int:arena_id>/", ArenaConsumer.as_asgi()),  # arena progress (issue 11)
]
