"""API shapes for /api/arenas (django-ninja). Inputs carry the bounds the services enforce (ids bounded, no NUL
in text, winners a Literal), so a malformed value is a 422 before any service runs and the OpenAPI schema
states it; what needs the database (does the alias exist, is the version ready) is checked by the services,
which answer with the same 422 field-error body."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from ninja import Field, Schema

from apps.core.inputs import Id, JSONDict, JSONList, Text

Winner = Literal["left", "right", "tie", "both_bad"]


class ArenaIn(Schema):
    name: Text = Field(..., min_length=1, max_length=200)
    contestants: list[Union[Text, JSONDict]] = Field(
        ..., min_length=2, max_length=8,
        description="2 to 8 models: an alias (`production`), a version (`mv-12`), a provider's model "
                    "(`openrouter/gpt-4o`), or {model_version_id | alias | provider + model, label?}")
    prompt_dataset_version_id: Optional[Id] = Field(
        None, description="prompts from this dataset version's validation split (each example up to its last "
                          "assistant turn)")
    prompts: Optional[list[Union[Text, JSONList, JSONDict]]] = Field(
        None, max_length=1000, description="or a list of prompts: text, a list of chat messages, or {messages}")
    max_prompts: Optional[int] = Field(None, ge=1, le=1000, description="at most this many dataset prompts (100)")
    voters: Optional[list[Text]] = Field(None, max_length=500,
                                         description="usernames; none: every signed-in user may vote")
    overlap: int = Field(1, ge=1, le=20, description="different voters per pair of answers")
    temperature: Optional[float] = Field(0.7, ge=0, le=2)
    max_tokens: Optional[int] = Field(512, ge=1, le=32768)
    concurrency: int = Field(4, ge=1, le=32, description="requests in flight during the generation")
    judge_model: Optional[Text] = Field(None, max_length=300, description="a judge model (same names as contestants)")
    judge_rubric: Text = Field("", max_length=20000)
    lease_seconds: int = Field(900, ge=60, le=86400)


class ContestantOut(Schema):
    id: int
    position: int
    label: str
    kind: Literal["version", "alias", "provider"]
    model: str
    model_version_id: Optional[int] = None
    provider: Optional[str] = None


class JobStateOut(Schema):
    id: int
    kind: str
    status: str
    phase: str
    progress: dict[str, Any]
    percent: Optional[float] = None
    error: str
    active: bool


class ProgressOut(Schema):
    status: str
    items: int
    matches: int
    overlap: int
    required: int
    votes: int
    voters: list[str]
    per_voter: dict[str, int]


class ArenaOut(Schema):
    id: int
    name: str
    status: Literal["generating", "ready", "closed", "failed", "cancelled"]
    owner: str
    source: Literal["dataset", "prompts"]
    dataset_version_id: Optional[int] = None
    overlap: int
    params: dict[str, Any]
    contestants: list[ContestantOut]
    judge_model: str
    judge_rubric: str
    error: str
    job: Optional[JobStateOut] = None
    judge_job: Optional[JobStateOut] = None
    progress: ProgressOut
    export_version_id: Optional[int] = None
    dpo_run_id: Optional[int] = None
    created_at: str
    closed_at: Optional[str] = None


class AnswerOut(Schema):
    text: str


class NextOut(Schema):
    match_id: int
    item_id: int
    item_index: int
    prompt: list[dict[str, Any]]
    left: AnswerOut
    right: AnswerOut
    status: str
    lease_expires_at: Optional[str] = None


class VoteIn(Schema):
    item_id: Optional[Id] = Field(None, description="the item voted on (the pair you hold on it)")
    match_id: Optional[Id] = Field(None, description="the pair voted on (as `next` gave it); needed only when "
                                                     "you voted on several pairs of one item")
    winner: Winner
    comment: Text = Field("", max_length=5000)


class SideOut(Schema):
    contestant_id: int
    label: str


class VoteOut(Schema):
    match_id: int
    item_id: int
    winner: Winner
    outcome: Literal["a", "b", "tie", "both_bad"]
    comment: str
    chosen: Optional[str] = Field(None, description="the contestant the vote chose (none for tie / both bad)")
    left: SideOut
    right: SideOut


class PairOut(Schema):
    a: str
    b: str
    a_id: int
    b_id: int
    wins_a: int
    wins_b: int
    ties: int
    both_bad: int
    votes: int
    win_rate_a: Optional[float] = Field(None, description="wins_a / (wins_a + wins_b); ties and both-bad left out")
    ci_low: Optional[float] = Field(None, description="Wilson 95 % interval of win_rate_a")
    ci_high: Optional[float] = None


class RankOut(Schema):
    rank: Optional[int] = None
    contestant: str
    contestant_id: int
    model: str
    kind: str
    model_version_id: Optional[int] = None
    score: Optional[float] = Field(None, description="Bradley–Terry strength on the Elo scale (mean 1000)")
    ci_low: Optional[float] = Field(None, description="bootstrap 95 % interval (200 resamples of the votes)")
    ci_high: Optional[float] = None
    wins: int
    losses: int
    ties: int
    votes: int


class JudgeOut(Schema):
    model: str
    verdicts: int
    total: int
    errors: int
    unreadable: int
    compared: int = Field(description="human votes on matches the judge gave a verdict on")
    agreement: Optional[float] = None
    kappa: Optional[float] = Field(None, description="Cohen's κ between the judge and the voters")


class ResultsOut(Schema):
    pairs: list[PairOut]
    ranking: list[RankOut]
    votes: int
    voters: int
    matches: int
    judge: Optional[JudgeOut] = None


class OutputOut(Schema):
    contestant: str
    contestant_id: int
    text: Optional[str] = None
    error: str
    served_by: str
    latency_ms: Optional[float] = None


class ItemVoteOut(Schema):
    voter: str
    winner: str
    chosen: str
    comment: str
    voted_at: Optional[str] = None


class ItemJudgeOut(Schema):
    chosen: str
    winner: str
    reply: str
    error: str


class ItemMatchOut(Schema):
    match_id: int
    a: str
    b: str
    left: str
    right: str
    votes: list[ItemVoteOut]
    judge: Optional[ItemJudgeOut] = None


class ItemOut(Schema):
    item_id: int
    index: int
    prompt: list[dict[str, Any]]
    example_index: Optional[int] = None
    outputs: list[OutputOut]
    matches: list[ItemMatchOut]


class JudgeIn(Schema):
    model: Text = Field(..., min_length=1, max_length=300)
    rubric: Text = Field("", max_length=20000)


class ExportIn(Schema):
    name: Text = Field("", max_length=200)


class ExportOut(Schema):
    dataset_id: int
    dataset_version_id: int
    pairs: int
    voted: int = Field(description="pairs with at least one vote")
    undecided: int = Field(description="voted pairs with no clear preference (tie, both bad, split votes)")


class DpoIn(Schema):
    base_model: Optional[Text] = Field(None, max_length=200)
    parent_version_id: Optional[Id] = None
    from_winner: bool = Field(True, description="continue the best-ranked contestant's model version")
    hyperparameters: Optional[JSONDict] = None
    name: Text = Field("", max_length=200)


class DpoOut(Schema):
    run_id: int
    dataset_version_id: int
    parent_version_id: Optional[int] = None
    method: str
    status: str
