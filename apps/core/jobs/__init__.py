"""Background jobs: the one place that queues work for the Dramatiq workers.

`apps.core.jobs.enqueue.enqueue(actor_name, *args, queue_name=...)` sends a message to an actor by its
name after the current transaction commits, so `apps/` never imports a worker actor module and imports
run one way (workers -> apps services; `workers.engine`, which knows nothing of Django, may be imported
by anyone). Nothing is re-exported here: import the submodules (`from apps.core.jobs import enqueue`)."""
