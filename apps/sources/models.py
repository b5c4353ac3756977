"""Code sources and what is made from them: training scenarios from git repositories (issue 10).

- `Source`: where the code is — a local path (one repository, or a folder holding a core and its plugins), a
  git URL (cloned under ARTIFACT_ROOT/sources/<id>/), or an uploaded zip / tar of a working tree (unpacked
  there). It owns one or several `SourceRepo`s (role core | plugin) and the `ComponentRule`s that count
  framework components ("actions", "providers", ...). Its generations all write to one dataset
  (`dataset`), each run a new version of it.
- `SourceRepo`: one repository of a source, with the commit recorded by the last scan.
- `Analysis`: one analysis job ("source.analyse"): languages, lines, complexity, components, history,
  licence per repository (`results`), the commits it looked at.
- `Generation`: one generation job ("source.generate"): the options (generators, max, seed, teacher, test
  command), the estimate shown before launch, the engine's manifest (incremental regeneration: the next
  run regenerates only the units whose blobs changed), the report, and the dataset version it made. A failed
  generation leaves no version behind.
"""
from django.conf import settings
from django.db import models


class Source(models.Model):
    class Kind(models.TextChoices):
        PATH = "path", "Local path"
        URL = "url", "Git URL"
        ARCHIVE = "archive", "Uploaded archive"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # path: the absolute folder; url: the core repository's URL; archive: the stored upload (relative to
    # ARTIFACT_ROOT) — `location_key` is its normalized form, how the CLI finds "the same source" again.
    location = models.CharField(max_length=2000)
    location_key = models.CharField(max_length=2000, db_index=True)
    archive_name = models.CharField(max_length=255, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sources")
    dataset = models.ForeignKey("datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="code_sources")
    last_commit = models.CharField(max_length=64, blank=True)  # the core repository's commit at the last scan
    scanned_at = models.DateTimeField(null=True, blank=True)
    demo = models.BooleanField(default=False)  # the hub's own checkout, offered on a fresh machine
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class SourceRepo(models.Model):
    class Role(models.TextChoices):
        CORE = "core"
        PLUGIN = "plugin"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="repos")
    name = models.CharField(max_length=200)  # unique in the source; the provenance's `repo`
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CORE)
    # Where its git work tree is: absolute for path sources, relative to ARTIFACT_ROOT for clones and
    # archives (see services.repo_path).
    path = models.CharField(max_length=2000)
    url = models.CharField(max_length=2000, blank=True)  # clone URL (url sources)
    commit = models.CharField(max_length=64, blank=True)
    branch = models.CharField(max_length=255, blank=True)
    commit_time = models.CharField(max_length=40, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["source_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="sources_repo_name_once")]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"


class ComponentRule(models.Model):
    """A framework component counted by the analysis: files whose path matches `glob` and/or whose content
    matches `regex` (both given: both must match)."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="component_rules")
    name = models.CharField(max_length=100)
    glob = models.CharField(max_length=500, blank=True)
    regex = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["source_id", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="sources_rule_name_once")]

    def as_rule(self) -> dict:
        rule = {"name": self.name}
        if self.glob:
            rule["glob"] = self.glob
        if self.regex:
            rule["regex"] = self.regex
        return rule


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Analysis(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="analyses")
    job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="source_analysis")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    rescan = models.BooleanField(default=False)  # fetch new commits first (clones) / re-read HEAD
    commits = models.JSONField(default=dict, blank=True)  # {repo name: commit}
    # {"repos": [engine analysis per repository], "totals": {languages, complexity, components, history...}}
    results = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Analysis #{self.pk} of {self.source}"


class Generation(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="generations")
    analysis = models.ForeignKey(Analysis, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    job = models.OneToOneField("core.Job", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="source_generation")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # {generators, max_examples, seed, include_tests, include_config, exclude_complex, test_command,
    #  run_tests, teacher: {endpoint, provider_id, model, temperature, requests_per_minute, prices} | None}
    options = models.JSONField(default=dict, blank=True)
    estimate = models.JSONField(default=dict, blank=True)
    commits = models.JSONField(default=dict, blank=True)  # {repo name: commit} generated from
    # The generation whose manifest (and version) this one built on, incrementally.
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # {repo name: engine manifest}; kept with the version for the next incremental run
    manifest = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)  # generation-report.json (+ dataset_version_id)
    # {added, removed, changed, kept, by_repo: {...}, skipped, test_runs, teacher: {...}}
    summary = models.JSONField(default=dict, blank=True)
    dataset_version = models.OneToOneField("datasets.DatasetVersion", null=True, blank=True,
                                           on_delete=models.SET_NULL, related_name="source_generation")
    error = models.CharField(max_length=500, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Generation #{self.pk} of {self.source}"
