"""API shapes for /api/evaluations and /api/rewards/components (django-ninja). Bounds that need no database are
stated here (a 422 before any service runs); the rest (does the version exist and have weights here, are the
weights' names known components, did the tasks parse) is checked by the service, with the same 422 body."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from ninja import Field, Schema

from apps.core.inputs import Id, JSONDict, JSONList, Text


class EvaluationIn(Schema):
    model_version_id: Id = Field(..., description="the version that answers")
    compare_to_version_id: Optional[Id] = Field(None, description="a second version (usually the parent) that "
                                                                  "answers the same tasks, for the comparison")
    dataset_version_id: Optional[Id] = Field(None, description="tasks from this dataset version's examples (its "
                                                               "validation split, or all: `split`)")
    split: Literal["validation", "all"] = "validation"
    tasks: Optional[list[Union[Text, JSONList, JSONDict]]] = Field(
        None, max_length=1000, description="or the tasks: text, chat messages, {prompt, answer?, tests?, language?, "
                                           "tools?, metadata?}, {messages} (a chat example), or a generated task "
                                           "{title, description, acceptance_criteria, files}")
    weights: Optional[dict[str, Any]] = Field(None, description="component name → weight (GET /api/rewards/components)")
    preset: Optional[Text] = Field(None, max_length=64, description="a preset's weights instead (autonomous-agent, "
                                                                    "code, arithmetic, tool-use)")
    max_tasks: Optional[int] = Field(None, ge=1, le=1000, description="at most this many tasks (50)")
    max_new_tokens: Optional[int] = Field(None, ge=1, le=4096, description="per answer (256)")
    name: Text = Field("", max_length=200)


class ComponentMean(Schema):
    label: str
    weight: float
    category: str
    mean: Optional[float] = None
    n: int
    errors: int
    skipped: int


class CategoryMean(Schema):
    label: str
    mean: Optional[float] = None
    n: int


class SideSummary(Schema):
    n: int
    failed: int
    total: Optional[float] = None
    components: dict[str, ComponentMean]
    categories: dict[str, CategoryMean]


class Paired(Schema):
    label: Optional[str] = None
    diff: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    n: int


class PairedTotal(Paired):
    wins: int
    losses: int
    ties: int


class Comparison(Schema):
    total: PairedTotal
    components: dict[str, Paired]
    categories: dict[str, Paired]


class SummaryOut(Schema):
    sides: dict[str, SideSummary] = {}
    comparison: Optional[Comparison] = None
    weights: dict[str, float] = {}


class VersionRef(Schema):
    id: int
    name: str


class JobState(Schema):
    id: int
    status: str
    phase: str
    progress: dict[str, Any]
    error: str
    active: bool
    cancel_requested: bool


class EvaluationOut(Schema):
    id: int
    name: str
    status: str
    owner: str
    model_version: VersionRef
    compare_to: Optional[VersionRef] = None
    source: str
    dataset_version_id: Optional[int] = None
    split: str
    preset: str
    weights: dict[str, float]
    params: dict[str, Any]
    task_count: int
    progress: dict[str, Any]
    job: Optional[JobState] = None
    summary: Optional[SummaryOut] = None
    error: str
    created_at: str
    finished_at: Optional[str] = None


class ComponentScore(Schema):
    score: float
    weight: float
    error: Optional[str] = None
    detail: str
    skipped: bool = False
    duration_s: Optional[float] = None


class AnswerOut(Schema):
    side: str
    text: str
    total: Optional[float] = None
    error: str
    components: dict[str, ComponentScore]


class TaskOut(Schema):
    id: int
    index: int
    example_index: Optional[int] = None
    task: dict[str, Any]
    answers: list[AnswerOut]


class ComponentOut(Schema):
    name: str
    label: str
    description: str
    category: str
    category_label: str
    timeout_s: float
    needs: list[str]
    verifier: bool
    builtin: bool


class PluginError(Schema):
    module: str
    error: str


class RegistryOut(Schema):
    components: list[ComponentOut]
    categories: dict[str, str]
    presets: dict[str, dict[str, float]]
    preset_notes: dict[str, str]
    plugin_errors: list[PluginError]
