"""Team review of a dataset version: tasks, the queue's items and leases, decisions, turn edits, comments,
flags, the bulk-action audit and the versions a task made.

Contract (the queue): a `ReviewItem` is one example of the task's version; `taken` counts the reviewers
who hold it (a live lease) or have decided on it, and never exceeds the task's overlap (`open` is
`taken < overlap`, kept in step by the services under the item's row lock). A `ReviewResponse` is one
reviewer's slot on one item (unique per item and reviewer): leased -> done, or skipped (slot given back,
the item comes back to them after the rest). Counters (`done`, `taken`, the task's `done_items`) change
only in apps.review.services, in the same transaction as the rows they count."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

DECISIONS = ("accept", "reject")
FLAGS = ("pii", "wrong", "low_quality", "duplicate")
FLAG_LABELS = {"pii": "PII", "wrong": "Wrong", "low_quality": "Low quality", "duplicate": "Duplicate"}
BULK_ACTIONS = ("accept", "reject", "tag", "assign")


class ReviewTask(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        FINISHING = "finishing"
        FINISHED = "finished"

    version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="review_tasks")
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_tasks_owned")
    lead = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="review_tasks_led")
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, through="ReviewAssignment",
                                       related_name="review_tasks")
    overlap = models.PositiveSmallIntegerField(default=1)
    filter = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=list, blank=True)  # label choices offered to reviewers
    rating = models.BooleanField(default=False)  # ask a 1-5 rating
    lease_seconds = models.PositiveIntegerField(default=600)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    result_version = models.ForeignKey("datasets.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)  # items with every decision in (or a final decision)
    decisions = models.PositiveIntegerField(default=0)  # reviewer decisions in
    finishing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ReviewAssignment(models.Model):
    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_assignments")
    done = models.PositiveIntegerField(default=0)
    # the example_index of the last item this reviewer took: the queue looks ahead of it first
    cursor = models.IntegerField(default=-1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "user"], name="uniq_review_assignment")]


class ReviewItem(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"  # fewer than `overlap` decisions
        AGREED = "agreed"  # every reviewer gave the same decision
        DISPUTED = "disputed"  # reviewers disagree: waits for adjudication
        RESOLVED = "resolved"  # adjudicated, or decided by a bulk action

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey("datasets.Example", on_delete=models.CASCADE, related_name="+")
    example_index = models.PositiveIntegerField()
    taken = models.PositiveSmallIntegerField(default=0)
    open = models.BooleanField(default=True)  # in the queue: taken < task.overlap and not resolved
    done = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    final_decision = models.CharField(max_length=8, blank=True, default="")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    messages = models.JSONField(null=True, blank=True)  # current edited messages; None = as the example
    revision = models.PositiveIntegerField(default=0)
    tags = models.TextField(blank=True, default="")  # "|tag|tag|"
    reserved = models.BooleanField(default=False)  # only the reviewers in ItemReservation may take it
    # an adjudicator's per-turn decisions ({"3": "reject"}); None: taken from the reviewers' answers
    turn_decisions = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["task_id", "example_index"]
        constraints = [models.UniqueConstraint(fields=["task", "example_index"], name="uniq_review_item_index")]
        indexes = [
            models.Index(fields=["task", "example_index"], condition=Q(open=True), name="review_item_open"),
            models.Index(fields=["task", "state"], name="review_item_state"),
        ]


class ItemReservation(models.Model):
    """A bulk `assign`: the item is kept for these reviewers."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="reservations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="uniq_item_reservation")]


class ReviewResponse(models.Model):
    class Status(models.TextChoices):
        LEASED = "leased"
        SKIPPED = "skipped"
        DONE = "done"

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="responses")
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="responses")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_responses")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.LEASED)
    decision = models.CharField(max_length=8, blank=True, default="")
    labels = models.JSONField(default=list, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    turn_decisions = models.JSONField(default=dict, blank=True)  # {"3": "reject"}
    edited_turns = models.JSONField(default=list, blank=True)  # turn indexes this reviewer edited
    base_revision = models.PositiveIntegerField(default=0)  # the item's revision when it was leased
    leased_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    skipped_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="uniq_review_response")]
        indexes = [
            models.Index(fields=["task", "lease_expires_at"], condition=Q(status="leased"), name="review_resp_leased"),
            models.Index(fields=["task", "reviewer", "status"], name="review_resp_reviewer"),
            models.Index(fields=["task", "reviewer", "decided_at"], name="review_resp_decided"),
        ]


class TurnEdit(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="edits")
    turn_index = models.PositiveIntegerField()
    revision = models.PositiveIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    before = models.JSONField()
    after = models.JSONField()
    # the response this edit was made with (undo reverts it); None for an adjudicator's edit
    response = models.ForeignKey(ReviewResponse, null=True, blank=True, on_delete=models.SET_NULL, related_name="edits")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "revision"]
        indexes = [models.Index(fields=["item", "turn_index", "revision"], name="review_edit_turn")]


class ReviewComment(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "created_at", "id"]


class ReviewFlag(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="flags")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    flag = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user", "flag"], name="uniq_review_flag")]


class BulkAction(models.Model):
    """The audit row of one bulk action."""

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="bulk_actions")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=16)
    filter = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class ReviewSnapshot(models.Model):
    """A dataset version made from a task's decisions (`final`: by finish; else a snapshot of an open task)."""

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="snapshots")
    version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.CASCADE, related_name="review_snapshots")
    final = models.BooleanField(default=False)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    edited = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
