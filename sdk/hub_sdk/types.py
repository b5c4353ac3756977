"""The shapes /api answers with, as TypedDicts named after their OpenAPI components (`/api/openapi.json`).

Answers are plain dicts (JSON as it came), typed here so an editor and a type checker know their keys.
`COMPONENTS` maps each TypedDict to its component: tests/sdk/test_types_contract.py checks, against the schema the
app serves, that the keys (and which of them are required) are the same, so a change to the API breaks a test
rather than a user's script."""

from typing import Any, Literal, NotRequired, TypedDict

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Method = Literal["lora", "full", "scratch", "dpo", "kto", "grpo", "grow"]


class FieldError(TypedDict):
    field: NotRequired[str | None]
    message: str


class ErrorBody(TypedDict):
    detail: str
    code: str
    errors: NotRequired[list[FieldError]]


class Me(TypedDict):
    id: int
    username: str
    role: Literal["admin", "reviewer", "member"]


class ApiKeyCreated(TypedDict):
    id: int
    name: str
    prefix: str
    owner: str
    created_at: str
    last_used_at: str | None
    revoked: bool
    allowed_aliases: list[str] | None
    allowed_models: list[str] | None
    rpm: int | None
    tpm: int | None
    monthly_tokens: int | None
    expires_at: str | None
    expired: bool
    month_tokens_used: int | None
    key: str


# -- datasets --------------------------------------------------------------------------------------------------
class Issue(TypedDict):
    line: int | None
    code: str
    message: str
    file: NotRequired[str | None]
    severity: NotRequired[str | None]
    example: NotRequired[int | None]


class ValidationReport(TypedDict):
    errors: NotRequired[list[Issue]]
    warnings: NotRequired[list[Issue]]
    counts: NotRequired[dict[str, Any]]
    error_total: NotRequired[int]
    warning_total: NotRequired[int]


class VersionSummary(TypedDict):
    id: int
    version_id: int
    dataset_id: int
    number: int
    status: Literal["importing", "ready", "failed"]
    format: str
    example_count: int
    content_hash: str
    parent_id: int | None
    note: str
    error_count: int
    warning_count: int
    created_at: str


class Version(TypedDict):
    id: int
    version_id: int
    dataset_id: int
    dataset_name: str
    number: int
    status: Literal["importing", "ready", "failed"]
    format: str
    target: str
    source_name: str
    example_count: int
    content_hash: str
    parent_id: int | None
    note: str
    error: str
    has_errors: bool
    validation: ValidationReport
    stats: dict[str, Any]
    progress: dict[str, Any]  # while importing: {stage, examples, total}
    created_at: str


class Dataset(TypedDict):
    id: int
    dataset_id: int
    name: str
    description: str
    owner: str
    created_at: str
    version_count: int
    latest_version: VersionSummary | None
    current_version: NotRequired[VersionSummary | None]  # the pinned version when ready, else the newest ready
    pinned_version_id: NotRequired[int | None]


class DatasetDetail(Dataset):
    versions: list[VersionSummary]
    latest: Version | None


# -- training --------------------------------------------------------------------------------------------------
class Run(TypedDict):
    id: int
    name: str
    status: JobStatus
    method: Method
    backend: Literal["local", "together"]
    owner: str
    dataset_version_id: int
    dataset_id: int
    base_model: str | None
    parent_version_id: int | None
    hyperparameters: dict[str, Any]
    current_step: int
    total_steps: int
    summary: dict[str, Any]  # loss, learning_rate, eta_s, eval_loss, perplexity, final_loss, ...
    error: str
    error_code: NotRequired[str]
    phase: NotRequired[str]  # queued, loading, training, evaluating, saving, registering
    elapsed_s: NotRequired[float | None]
    duration_s: NotRequired[float | None]
    job_id: NotRequired[int | None]
    cancel_requested: bool
    model_version_id: int | None
    queue_position: int | None
    remote_job_id: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class Checkpoint(TypedDict):
    id: int
    run_id: int
    step: int
    stage: int
    eval_loss: float | None
    model_version_id: int | None
    created_at: str


class RunDetail(Run):
    metrics: list[dict[str, Any]]  # {step, kind: "train" | "eval", loss, learning_rate, ...}
    checkpoints: list[Checkpoint]


class Evaluation(TypedDict):
    """What a finished run measured (composed by `Hub.evaluate` from the run and its model version)."""

    run_id: int
    status: JobStatus
    model_version_id: int | None
    final_loss: float | None
    eval_loss: float | None
    perplexity: float | None
    evaluation: dict[str, Any]  # post-training checks (e.g. tool calls) when the run had them
    model_metrics: dict[str, Any]
    train_loss: list[tuple[int, float]]
    eval_points: list[dict[str, Any]]


# -- jobs ------------------------------------------------------------------------------------------------------
class JobTarget(TypedDict):
    type: NotRequired[str | None]
    id: NotRequired[int | None]
    label: str
    url: NotRequired[str | None]


class Job(TypedDict):
    id: int
    kind: str
    kind_label: str
    status: JobStatus
    phase: str
    progress: dict[str, Any]  # {current, total, unit, message}
    percent: NotRequired[float | None]
    owner: NotRequired[str | None]
    target: JobTarget
    holder: str
    heartbeat_at: NotRequired[str | None]
    attempts: int
    cancel_requested: bool
    error: str
    error_code: str
    created_at: str
    started_at: NotRequired[str | None]
    finished_at: NotRequired[str | None]
    next_poll_at: NotRequired[str | None]
    next_poll_in_s: NotRequired[float | None]
    age_s: NotRequired[float | None]
    elapsed_s: NotRequired[float | None]
    can_cancel: bool
    can_retry: bool


class JobBrief(TypedDict):
    id: int
    status: str
    phase: str
    progress: dict[str, Any]
    error: str
    error_code: str


# -- registry --------------------------------------------------------------------------------------------------
class AliasRef(TypedDict):
    id: int
    name: str


class ModelVersion(TypedDict):
    id: int
    name: str
    served_name: str
    kind: Literal["adapter", "full", "remote"]
    base_model_id: str | None
    parent_id: int | None
    run_id: int | None
    dataset_version_id: int | None
    remote_model_id: str
    final_loss: float | None
    created_at: str
    aliases: list[AliasRef]


class ModelVersionDetail(ModelVersion):
    artifact_path: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    deployments: list[dict[str, Any]]


class Alias(TypedDict):
    id: int
    name: str
    model_version_id: int
    model_version_name: str
    served_name: str
    updated_by: str | None
    updated_at: str
    can_rollback: bool
    experiment_id: NotRequired[int | None]
    experiment_kind: NotRequired[str | None]


class BaseModel(TypedDict):
    id: str
    name: str
    path: str
    source: str
    architecture: str
    parameters: int | None
    context_length: int
    hidden_size: int
    is_default: bool
    created_at: str


class ExportProgress(TypedDict):
    current: NotRequired[float | None]
    total: NotRequired[float | None]
    unit: NotRequired[str | None]
    message: NotRequired[str | None]


class Export(TypedDict):
    id: int
    model_version_id: int
    model_version_name: str
    status: Literal["queued", "running", "succeeded", "degraded", "failed", "cancelled"]
    format: Literal["adapter", "merged", "gguf"]
    quantization: NotRequired[str | None]
    path: NotRequired[str | None]
    size_bytes: NotRequired[int | None]
    checks: dict[str, Any]
    checks_summary: str
    timings: dict[str, Any]
    llama_cpp_version: NotRequired[str | None]
    error: NotRequired[str | None]
    job_id: NotRequired[int | None]
    phase: NotRequired[str | None]
    progress: NotRequired[ExportProgress | None]
    download_url: NotRequired[str | None]
    created_by: NotRequired[str | None]
    created_at: str
    finished_at: NotRequired[str | None]


# -- sources and generation ------------------------------------------------------------------------------------
class Repo(TypedDict):
    name: str
    role: Literal["core", "plugin"]
    url: NotRequired[str | None]
    commit: str
    branch: NotRequired[str | None]
    commit_time: NotRequired[str | None]
    subject: str


class Source(TypedDict):
    id: int
    name: str
    kind: Literal["path", "url", "archive"]
    location: str
    archive_name: NotRequired[str | None]
    owner: str
    dataset_id: NotRequired[int | None]
    last_commit: NotRequired[str | None]
    scanned_at: NotRequired[str | None]
    demo: bool
    created_at: str
    repos: list[Repo]
    rules: list[dict[str, str]]
    latest_analysis_id: NotRequired[int | None]
    analysis_id: NotRequired[int | None]


class Analysis(TypedDict):
    id: int
    source_id: int
    status: JobStatus
    commits: dict[str, str]
    error: str
    created_at: str
    finished_at: NotRequired[str | None]
    job: NotRequired[JobBrief | None]
    results: NotRequired[dict[str, Any]]


class Generation(TypedDict):
    id: int
    source_id: int
    status: JobStatus
    options: dict[str, Any]
    estimate: dict[str, Any]
    commits: dict[str, str]
    base_id: NotRequired[int | None]
    dataset_id: NotRequired[int | None]
    dataset_version_id: NotRequired[int | None]
    version_number: NotRequired[int | None]
    report: NotRequired[dict[str, Any]]
    summary: dict[str, Any]
    error: str
    error_code: str
    created_at: str
    finished_at: NotRequired[str | None]
    job: NotRequired[JobBrief | None]
    bundle_url: NotRequired[str | None]


# -- reviews ---------------------------------------------------------------------------------------------------
class ReviewProgress(TypedDict):
    total: int
    done: int
    decisions: int
    required: int
    disputed: int
    resolved: int
    per_reviewer: dict[str, int]
    active: list[dict[str, Any]]


class ReviewTask(TypedDict):
    id: int
    name: str
    status: str
    instructions: str
    dataset_id: int
    dataset_version_id: int
    overlap: int
    assignees: list[str]
    owner: str
    lead: NotRequired[str | None]
    labels: list[str]
    rating: bool
    filter: dict[str, Any]
    lease_seconds: int
    result_version_id: NotRequired[int | None]
    created_at: str
    finished_at: NotRequired[str | None]
    progress: ReviewProgress


# -- commands (POST /api/commands/parse) -----------------------------------------------------------------------
class ApiCall(TypedDict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str  # under the hub's origin, e.g. /api/runs
    body: NotRequired[dict[str, Any] | None]


class CommandPlan(TypedDict):
    """What a plain-language command would do; nothing has run yet."""

    text: str
    action: Literal["generate", "train", "status", "deploy", "rollback", "configure", "review", "cancel", "unknown"]
    summary: str
    params: dict[str, Any]
    api: NotRequired[ApiCall | None]  # null while something is missing or unresolved
    allowed: bool
    form_url: NotRequired[str | None]
    result_url: NotRequired[str | None]  # "{field}" filled from the API's answer
    missing: list[str]
    problems: list[FieldError]
    suggestions: list[str]
    notes: list[str]
    confirm: str
    hub_do: str


# -- evaluations (reward-based) --------------------------------------------------------------------------------
class VersionRef(TypedDict):
    id: int
    name: str


class EvaluationJob(TypedDict):
    id: int
    status: str
    phase: str
    progress: dict[str, Any]
    error: str
    active: bool
    cancel_requested: bool


class RewardEvaluation(TypedDict):
    id: int
    name: str
    status: str
    owner: str
    model_version: VersionRef
    compare_to: NotRequired[VersionRef | None]
    source: str
    dataset_version_id: NotRequired[int | None]
    split: str
    preset: str
    weights: dict[str, float]
    params: dict[str, Any]
    task_count: int
    progress: dict[str, Any]
    job: NotRequired[EvaluationJob | None]
    summary: NotRequired[dict[str, Any] | None]  # {sides: {a, b}: {total, components, categories}, comparison}
    error: str
    created_at: str
    finished_at: NotRequired[str | None]


# TypedDict -> its component in /api/openapi.json (checked by tests/sdk/test_types_contract.py)
COMPONENTS: dict[type, str] = {
    FieldError: "FieldError", ErrorBody: "Error", Me: "MeOut", ApiKeyCreated: "KeyCreatedOut", Issue: "IssueOut",
    ValidationReport: "ValidationOut", VersionSummary: "VersionSummaryOut", Version: "VersionOut",
    Dataset: "DatasetOut", DatasetDetail: "DatasetDetailOut", Run: "RunOut", RunDetail: "RunDetailOut",
    Checkpoint: "CheckpointOut", Job: "JobOut", JobTarget: "JobTargetOut", JobBrief: "JobBrief",
    AliasRef: "AliasRef", ModelVersion: "ModelVersionOut", ModelVersionDetail: "ModelVersionDetail",
    Alias: "AliasOut", BaseModel: "BaseModelOut", Export: "ExportOut", ExportProgress: "ExportProgress",
    Repo: "RepoOut", Source: "SourceOut", Analysis: "AnalysisOut", Generation: "GenerationOut",
    ApiCall: "ApiCallOut", CommandPlan: "CommandOut", VersionRef: "VersionRef", EvaluationJob: "JobState",
    RewardEvaluation: "EvaluationOut",
    # ReviewTask and ReviewProgress are left out: their components' names (TaskOut, ProgressOut) are taken by other
    # apps' schemas of the same name (evaluations, arenas), so /api/openapi.json shows those shapes instead.
}
