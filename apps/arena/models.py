"""Blind arenas: two or more contestants answer the same prompts; people vote, blind, on pairs of answers.

Contract:
- An `Arena` has contestants (a model version, an alias, or a provider's model, each called through the hub's
  own routing by the name in `Contestant.model`), a prompt set (`ArenaItem`, copied at creation from a dataset
  version's validation split or from a list given by its owner), optional voters (none listed: every
  signed-in user may vote) and an overlap (how many different voters see each pair of answers).
- Its generation is a job (`arena.generate`, apps/arena/jobs.py): one `ArenaOutput` per item and contestant
  (text, or the error of the call). When it succeeds the arena is `ready` and has one `ArenaMatch` per item
  and pair of contestants whose two outputs both exist, each with its own random left/right order
  (`left_is_a`) and a random place in the queue (`order`).
- An `ArenaVote` is one voter's slot on one match (unique per match and voter): `leased` (shown to them,
  not answered yet), `skipped` (given back; offered again after the rest) or `done` with `winner` (left |
  right | tie | both_bad, as the voter saw it) and `outcome` (a | b | tie | both_bad: the same vote in terms
  of the match's contestants a and b, a being the lower position). `ArenaMatch.taken` counts live leases and
  done votes, never more than the arena's overlap; `open` is `taken < overlap`. Counters change only in
  apps.arena.services, under the match's row lock.
- A `JudgeVote` is a judge model's verdict on a match (apps/arena/services/judge.py), one per match.
- `export_version` is the preference dataset version the votes were last exported to; `dpo_run` the DPO run
  started from it.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

WINNERS = ("left", "right", "tie", "both_bad")
OUTCOMES = ("a", "b", "tie", "both_bad")
WINNER_LABELS = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "both_bad": "Both are bad"}


class Arena(models.Model):
    class Status(models.TextChoices):
        GENERATING = "generating"  # the generation job is queued or running
        READY = "ready"  # outputs in: voting is open
        CLOSED = "closed"  # voting closed by its owner: results are final and open to every participant
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Source(models.TextChoices):
        DATASET = "dataset"  # a dataset version's validation split
        PROMPTS = "prompts"  # a list of prompts given at creation

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="arenas_owned")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.GENERATING)
    source = models.CharField(max_length=16, choices=Source.choices)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="arenas")
    overlap = models.PositiveSmallIntegerField(default=1)
    # generation settings: {"temperature", "max_tokens", "concurrency"}
    params = models.JSONField(default=dict, blank=True)
    voters = models.ManyToManyField(settings.AUTH_USER_MODEL, through="ArenaVoter", related_name="arenas")
    lease_seconds = models.PositiveIntegerField(default=900)
    judge_model = models.CharField(max_length=300, blank=True)  # a /v1 name (alias or mv-<id>); "" = no judge
    judge_rubric = models.TextField(blank=True)
    job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="arena")
    judge_job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="arena_judged")
    export_version = models.ForeignKey("datasets.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="arena_exports")
    dpo_run = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="arenas")
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)  # generation finished
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ArenaVoter(models.Model):
    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="voter_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["arena", "user"], name="uniq_arena_voter")]


class Contestant(models.Model):
    class Kind(models.TextChoices):
        VERSION = "version"  # a model version, called as mv-<id>
        ALIAS = "alias"  # a deployment alias (its chain, or its deployed version)
        PROVIDER = "provider"  # a provider's model, called on that provider directly

    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="contestants")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    model = models.CharField(max_length=300)  # the /v1 name (mv-12, production) or the provider's model id
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    provider = models.ForeignKey("proxy.Provider", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    class Meta:
        ordering = ["arena_id", "position"]
        constraints = [models.UniqueConstraint(fields=["arena", "position"], name="uniq_contestant_position")]

    def __str__(self) -> str:
        return self.label


class ArenaItem(models.Model):
    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    messages = models.JSONField()  # the prompt: chat messages ending with a user turn
    example_index = models.PositiveIntegerField(null=True, blank=True)  # where it came from in the dataset version

    class Meta:
        ordering = ["arena_id", "index"]
        constraints = [models.UniqueConstraint(fields=["arena", "index"], name="uniq_arena_item_index")]


class ArenaOutput(models.Model):
    item = models.ForeignKey(ArenaItem, on_delete=models.CASCADE, related_name="outputs")
    contestant = models.ForeignKey(Contestant, on_delete=models.CASCADE, related_name="outputs")
    text = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)  # the call failed: why (no text then)
    served_by = models.CharField(max_length=300, blank=True)  # the target that answered (version:12, provider:x/m)
    latency_ms = models.FloatField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "contestant"], name="uniq_arena_output")]


class ArenaMatch(models.Model):
    """One item and one pair of contestants (a.position < b.position), shown blind in a random order."""

    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="matches")
    item = models.ForeignKey(ArenaItem, on_delete=models.CASCADE, related_name="matches")
    a = models.ForeignKey(Contestant, on_delete=models.CASCADE, related_name="+")
    b = models.ForeignKey(Contestant, on_delete=models.CASCADE, related_name="+")
    left_is_a = models.BooleanField()
    order = models.PositiveIntegerField()  # its place in the queue (a random permutation)
    taken = models.PositiveSmallIntegerField(default=0)  # live leases + done votes
    done = models.PositiveSmallIntegerField(default=0)  # done votes
    open = models.BooleanField(default=True)  # taken < overlap

    class Meta:
        ordering = ["arena_id", "order"]
        constraints = [models.UniqueConstraint(fields=["item", "a", "b"], name="uniq_arena_match")]
        indexes = [models.Index(fields=["arena", "order"], condition=Q(open=True), name="arena_match_open")]


class ArenaVote(models.Model):
    class Status(models.TextChoices):
        LEASED = "leased"
        SKIPPED = "skipped"
        DONE = "done"

    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="votes")
    match = models.ForeignKey(ArenaMatch, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="arena_votes")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.LEASED)
    winner = models.CharField(max_length=8, blank=True, default="")  # left | right | tie | both_bad
    outcome = models.CharField(max_length=8, blank=True, default="")  # a | b | tie | both_bad
    comment = models.TextField(blank=True)
    leased_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    skipped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    voted_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)  # from the lease to the vote

    class Meta:
        constraints = [models.UniqueConstraint(fields=["match", "voter"], name="uniq_arena_vote")]
        indexes = [
            models.Index(fields=["arena", "voter", "status"], name="arena_vote_voter"),
            models.Index(fields=["arena", "lease_expires_at"], condition=Q(status="leased"), name="arena_vote_leased"),
        ]


class JudgeVote(models.Model):
    match = models.OneToOneField(ArenaMatch, on_delete=models.CASCADE, related_name="judge_vote")
    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="judge_votes")
    model = models.CharField(max_length=300)
    winner = models.CharField(max_length=8, blank=True, default="")  # "" : no verdict could be read
    outcome = models.CharField(max_length=8, blank=True, default="")
    reply = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class ArenaExport(models.Model):
    """One export of an arena's votes as a preference dataset version (the lineage a DPO run reads)."""

    arena = models.ForeignKey(Arena, on_delete=models.CASCADE, related_name="exports")
    version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.CASCADE, related_name="+")
    pairs = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
