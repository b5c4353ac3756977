"""Request and response bodies of /api/sources and /api/generations. Bounds are typed here (422 before any
service runs, shown in the OpenAPI schema); the services check everything again with field errors."""
from __future__ import annotations

from typing import Any, Literal, Optional

from ninja import Field, Schema

from apps.core.inputs import Id, PathText, Text

Kind = Literal["path", "url", "archive"]
Role = Literal["core", "plugin"]


class RepoIn(Schema):
    path: PathText = Field(..., max_length=2000, description="a repository found by discover (absolute or relative)")
    role: Optional[Role] = None


class RuleIn(Schema):
    name: Text = Field(..., min_length=1, max_length=100)
    glob: Optional[Text] = Field(None, max_length=500, description="matched against the file path, e.g. src/actions/**")
    regex: Optional[Text] = Field(None, max_length=500, description="matched against the file content")


class SourceIn(Schema):
    kind: Literal["path", "url"] = Field(..., description="archives: POST /api/sources/archive (multipart)")
    location: Text = Field(..., min_length=1, max_length=2000, description="an absolute folder, or a git URL")
    name: Optional[Text] = Field(None, max_length=200)
    repos: Optional[list[RepoIn]] = Field(None, description="path sources: the repositories to include "
                                                            "(default: every one discover finds, the first as core)")
    plugins: Optional[list[Text]] = Field(None, description="url sources: more clone URLs (plugins of the core)")
    rules: Optional[list[RuleIn]] = Field(None, description="framework components to count")
    analyse: bool = Field(True, description="start the analysis job at once")


class SourcePatch(Schema):
    name: Optional[Text] = Field(None, min_length=1, max_length=200)
    rules: Optional[list[RuleIn]] = None


class DiscoverIn(Schema):
    path: PathText = Field(..., min_length=1, max_length=2000)


class DiscoveredOut(Schema):
    path: str
    relative: str
    name: str
    commit: str
    branch: Optional[str] = None
    subject: str
    role: Role


class RepoOut(Schema):
    name: str
    role: Role
    url: Optional[str] = None
    commit: str
    branch: Optional[str] = None
    commit_time: Optional[str] = None
    subject: str


class JobBrief(Schema):
    id: int
    status: str
    phase: str
    progress: dict[str, Any]
    error: str
    error_code: str


class SourceOut(Schema):
    id: int
    name: str
    kind: Kind
    location: str
    archive_name: Optional[str] = None
    owner: str
    dataset_id: Optional[int] = None
    last_commit: Optional[str] = None
    scanned_at: Optional[str] = None
    demo: bool
    created_at: str
    repos: list[RepoOut]
    rules: list[dict[str, str]]
    latest_analysis_id: Optional[int] = None
    analysis_id: Optional[int] = Field(None, description="the analysis started by this call, if any")


class AnalysisOut(Schema):
    id: int
    source_id: int
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    commits: dict[str, str]
    error: str
    created_at: str
    finished_at: Optional[str] = None
    job: Optional[JobBrief] = None
    results: dict[str, Any] = Field(default_factory=dict, description="{repos: [engine analysis per repository], "
                                                                       "totals: {...}, notes: [...]}")


class TeacherIn(Schema):
    endpoint: Literal["hub", "provider"]
    model: Text = Field(..., min_length=1, max_length=200, description="an alias of this hub, or the provider's model")
    provider_id: Optional[Id] = None
    temperature: Optional[float] = Field(None, ge=0, le=2)
    requests_per_minute: Optional[int] = Field(None, ge=1, le=10_000)
    max_tokens: Optional[int] = Field(None, ge=16, le=32_768)
    price_in_per_mtok: Optional[float] = Field(None, ge=0, le=1000)
    price_out_per_mtok: Optional[float] = Field(None, ge=0, le=1000)


class OptionsIn(Schema):
    generators: Optional[list[Text]] = Field(None, description="default: all offline generators")
    max_examples: Optional[int] = Field(None, ge=1, le=100_000, description="max scenarios (default 1000)")
    seed: Optional[int] = Field(None, ge=0, le=2**31 - 1)
    include_tests: Optional[bool] = None
    include_config: Optional[bool] = None
    exclude_complex: Optional[bool] = None
    run_tests: Optional[bool] = Field(None, description="opt in: run the repository's tests (its code) on the worker")
    test_command: Optional[Text] = Field(None, max_length=1000)
    test_timeout: Optional[int] = Field(None, ge=1, le=3600)
    max_test_runs: Optional[int] = Field(None, ge=1, le=1000)
    teacher: Optional[TeacherIn] = None


class EstimateOut(Schema):
    options: dict[str, Any]
    estimate: dict[str, Any]
    analysis_id: Optional[int] = None


class GenerationOut(Schema):
    id: int
    source_id: int
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    options: dict[str, Any]
    estimate: dict[str, Any]
    commits: dict[str, str]
    base_id: Optional[int] = Field(None, description="the generation this one regenerated from, incrementally")
    dataset_id: Optional[int] = None
    dataset_version_id: Optional[int] = None
    version_number: Optional[int] = None
    report: dict[str, Any] = Field(default_factory=dict, description="generation-report.json (totalScenarios, ...)")
    summary: dict[str, Any]
    error: str
    error_code: str
    created_at: str
    finished_at: Optional[str] = None
    job: Optional[JobBrief] = None
    bundle_url: Optional[str] = None
