"""API shapes for /api/reviews (django-ninja). Inputs carry the rules the services enforce (decisions,
flags and bulk actions are Literals from apps.review.models; ids bounded; no NUL in text), so a bad value is
a 422 before any service runs and the OpenAPI schema states it."""
from __future__ import annotations

from typing import Any, Literal, Optional

from ninja import Field, Schema

from apps.core.inputs import Id, JSONDict, JSONList, Text
from apps.core.jobs.api import JobOut
from apps.review.models import BULK_ACTIONS, FLAGS

Decision = Literal["accept", "reject", "skip"]
FinalDecision = Literal["accept", "reject"]
TurnDecision = Literal["accept", "reject", ""]
Flag = Literal[tuple(FLAGS)]
BulkActionName = Literal[tuple(BULK_ACTIONS)]
Username = Text


class TaskIn(Schema):
    dataset_version_id: Id
    name: Text = Field(..., min_length=1, max_length=200)
    overlap: int = Field(1, ge=1, le=20)
    assignees: list[Username] = Field(..., min_length=1, max_length=200)
    instructions: Text = Field("", max_length=20000)
    labels: list[Text] = Field(default_factory=list, max_length=50)
    rating: bool = False
    lead: Optional[Username] = Field(None, max_length=150)
    filter: Optional[JSONDict] = None
    lease_seconds: int = Field(600, ge=30, le=86400)


class TaskPatch(Schema):
    name: Optional[Text] = Field(None, min_length=1, max_length=200)
    instructions: Optional[Text] = Field(None, max_length=20000)
    assignees: Optional[list[Username]] = Field(None, min_length=1, max_length=200)
    lead: Optional[Username] = Field(None, max_length=150)
    clear_lead: bool = False


class ProgressActive(Schema):
    username: str
    item_id: int
    example_index: int
    since: Optional[str] = None


class ProgressOut(Schema):
    total: int
    done: int
    decisions: int
    required: int
    disputed: int
    resolved: int
    per_reviewer: dict[str, int]
    active: list[ProgressActive]


class TaskOut(Schema):
    id: int
    name: str
    status: str
    instructions: str
    dataset_id: int
    dataset_version_id: int
    overlap: int
    assignees: list[str]
    owner: str
    lead: Optional[str] = None
    labels: list[str]
    rating: bool
    filter: dict
    lease_seconds: int
    result_version_id: Optional[int] = None
    created_at: str
    finished_at: Optional[str] = None
    progress: ProgressOut


class ExampleOut(Schema):
    messages: list[Any]
    tools: Optional[Any] = None
    category: str = ""
    source_file: str = ""
    source_line: Optional[int] = None
    tags: list[Any] = []
    split: str = "train"
    issues: list[str] = []
    meta: dict = {}


class NextOut(Schema):
    item_id: int
    example_index: int
    revision: int
    lease_expires_at: Optional[str] = None
    example: ExampleOut


class DecisionIn(Schema):
    decision: Decision
    messages: Optional[JSONList] = Field(None, description="the full message list with edited turns in place")
    comment: Optional[Text] = Field(None, max_length=5000)
    labels: Optional[list[Text]] = Field(None, max_length=50)
    rating: Optional[int] = Field(None, ge=1, le=5)
    turn_decisions: Optional[dict[str, FinalDecision]] = None
    base_revision: Optional[int] = Field(None, ge=0, le=2**31 - 1)


class DecisionOut(Schema):
    item_id: int
    decision: str
    state: Optional[str] = None
    done: Optional[int] = None
    edited_turns: list[int] = []


class TurnIn(Schema):
    message: Optional[JSONDict] = None
    decision: Optional[TurnDecision] = None
    base_revision: Optional[int] = Field(None, ge=0, le=2**31 - 1)


class TurnOut(Schema):
    item_id: int
    turn_index: int
    revision: int
    message: dict
    diff: list[str]
    changed: bool
    decision: Optional[str] = None


class CommentIn(Schema):
    body: Text = Field(..., min_length=1, max_length=5000)


class CommentOut(Schema):
    id: int
    author: Optional[str] = None
    body: str
    created_at: str


class FlagIn(Schema):
    flag: Flag
    on: bool = True


class FlagsOut(Schema):
    item_id: int
    flags: list[str]


class TurnView(Schema):
    index: int
    role: Optional[str] = None
    changed: bool
    diff: list[str]
    edited_by: Optional[str] = None


class ItemOut(Schema):
    item_id: int
    task_id: int
    example_index: int
    state: str
    final_decision: Optional[str] = None
    revision: int
    tags: list[str]
    example: dict
    turns: list[TurnView]
    mine: Optional[dict] = None
    held: bool
    lease_expires_at: Optional[str] = None
    comments: list[dict]
    flags: dict
    can_adjudicate: bool


class PairOut(Schema):
    a: str
    b: str
    cohen_kappa: Optional[float] = None
    n: int


class ReviewerStatsOut(Schema):
    username: str
    done: int
    accept_rate: Optional[float] = None
    median_seconds: Optional[float] = None
    agreement_with_consensus: Optional[float] = None
    compared: int


class AgreementOut(Schema):
    krippendorff_alpha: Optional[float] = None
    rating_alpha_interval: Optional[float] = None
    rating_alpha_ordinal: Optional[float] = None
    pairs: list[PairOut]
    reviewers: list[ReviewerStatsOut]
    items_compared: int


class AdjudicationItemOut(Schema):
    item_id: int
    example_index: int
    responses: list[dict]


class AdjudicateIn(Schema):
    decision: FinalDecision
    messages: Optional[JSONList] = None
    comment: Optional[Text] = Field(None, max_length=5000)
    turn_decisions: Optional[dict[str, FinalDecision]] = None
    base_revision: Optional[int] = Field(None, ge=0, le=2**31 - 1)


class AdjudicatedOut(Schema):
    item_id: int
    state: str
    final_decision: str
    decided_by: str


class BulkIn(Schema):
    filter: JSONDict = Field(default_factory=dict)
    action: BulkActionName
    tag: Optional[Text] = Field(None, max_length=60)
    assignees: Optional[list[Username]] = Field(None, max_length=200)


class BulkOut(Schema):
    count: int
    audit_id: int
    action: str


class ResultOut(Schema):
    dataset_version_id: int
    status: Literal["importing", "ready", "failed"] = Field(
        description="the version's: `importing` while its job builds it (answered with 202), then `ready`")
    accepted: int
    rejected: int
    edited: int
    final: bool
    snapshot_id: int
    error: Optional[str] = Field(None, description="why the version failed (status `failed`)")
    job: Optional[JobOut] = Field(None, description="the job building the version (kind `review.result`): "
                                                    "follow it at /api/jobs/{id}; cancel it there")


class PreferenceExportIn(Schema):
    name: Text = Field("", max_length=200, description="the new dataset's name (default: the task's name)")


class PreferenceSkippedOut(Schema):
    whitespace_only: int = Field(description="edited assistant turns that changed only whitespace")
    not_accepted: int = Field(description="edited assistant turns of examples with no final accept (yet)")
    rejected_turn: int = Field(description="edited assistant turns the final decision rejects")
    tool_calls: int = Field(description="edited assistant turns with a tool call on either side")
    no_context: int = Field(description="edited assistant turns with no turn before them")


class PreferenceExportOut(Schema):
    dataset_id: int
    dataset_version_id: int
    pairs: int = Field(description="preference pairs written: one per edited assistant turn of an accepted "
                                   "example (the reviewed turn preferred, the original not)")
    skipped: PreferenceSkippedOut


class ReviewDpoIn(Schema):
    dataset_version_id: Optional[Id] = Field(None, description="one of this task's preference exports "
                                                               "(default: the last one)")
    base_model: Optional[Text] = Field(None, max_length=200)
    parent_version_id: Optional[Id] = Field(None, description="the model version to continue (an adapter)")
    hyperparameters: Optional[JSONDict] = None
    name: Text = Field("", max_length=200)


class ReviewDpoOut(Schema):
    run_id: int
    dataset_version_id: int
    parent_version_id: Optional[int] = None
    method: str
    status: str
