"""python manage.py generate_scenarios SOURCE [--max N] [--generators a,b,...] [--seed S] [--test-cmd CMD] [--json]

SOURCE is a local folder (a git repository, or a folder of a core and its plugins), a git URL, an archive
file (zip / tar of a working tree), or the id of an existing source. The first run registers the source (as
--user, default `admin`, else the first superuser or admin), analyses it and generates scenarios into a new
dataset; a run on the same path, URL or archive file again re-scans it (an archive is unpacked again) and makes
a new version of the same dataset, regenerating only what changed. Everything runs in this process (no worker
needed); --test-cmd opts in to running the repository's tests (in a sandboxed subprocess with a timeout) to
keep only mutations that a test catches.

Prints generation-report.json (with `dataset_version_id`, `dataset_id`, `totalScenarios`, the incremental
counts) as JSON; exits 1 with the error (as JSON with --json) when anything fails — nothing half-made is left.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

_ARCHIVE = re.compile(r"\.(zip|tar|tgz|tar\.gz|tar\.bz2|tbz2|tar\.xz|txz)$", re.I)
_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)")


class Command(BaseCommand):
    help = "Generate training scenarios from a git repository (incrementally on later runs); prints the report JSON."
    # The system checks import every API router (~1.5 s of a ~6 s regeneration); `manage.py check`, the web
    # process and the test suite run them, a scripted generation need not pay for them each time.
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("source", help="a folder, a git URL, an archive, or a source id")
        parser.add_argument("--max", type=int, default=None, dest="max_examples", help="max scenarios (default 1000)")
        parser.add_argument("--generators", default=None, help="comma-separated generators (default: all offline ones)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--test-cmd", default=None, dest="test_cmd",
                            help="opt in: run this test command to keep only mutations a test catches")
        parser.add_argument("--test-timeout", type=int, default=None, dest="test_timeout")
        parser.add_argument("--name", default="", help="the source's name on its first run")
        parser.add_argument("--user", default=None, help="owner (default: admin or the first superuser)")
        parser.add_argument("--json", action="store_true", help="print only the JSON (the report, or the error)")

    def _fail(self, opts, message: str, code: str = "error", **extra):
        if opts["json"]:
            self.stdout.write(json.dumps({"error": message, "code": code, **extra}))
            sys.exit(1)
        raise CommandError(message)

    def _user(self, opts):
        User = get_user_model()
        if opts["user"]:
            user = User.objects.filter(username=opts["user"]).first()
            if user is None:
                self._fail(opts, f"No user {opts['user']!r}.", "unknown_user")
            return user
        user = (User.objects.filter(username="admin").first()
                or User.objects.filter(is_superuser=True).order_by("pk").first()
                or User.objects.filter(role="admin").order_by("pk").first())
        if user is None:
            self._fail(opts, "No `admin` user and no admin or superuser exists: create one, or pass --user.",
                       "no_user")
        return user

    def handle(self, *args, **opts):
        from apps.core.exceptions import ApplicationError
        from apps.sources import services
        from apps.sources.models import JobStatus, Source

        user = self._user(opts)
        raw = opts["source"]
        options = {k: v for k, v in {"max_examples": opts["max_examples"], "generators": opts["generators"],
                                     "seed": opts["seed"], "test_timeout": opts["test_timeout"]}.items()
                   if v is not None}
        if opts["test_cmd"]:
            options.update(run_tests=True, test_command=opts["test_cmd"])
        try:
            services.parse_options(options)  # bad options fail before anything is registered
            source = None
            if raw.isdigit():
                source = Source.objects.filter(pk=int(raw)).first()
                if source is None or not services.can_manage(user, source):
                    self._fail(opts, f"No source {raw}.", "not_found")
            else:
                source = services.source_for_location(user=user, location=raw)
            created = source is None
            if not created and source.kind == Source.Kind.ARCHIVE and Path(raw).is_file():
                source = services.source_refresh_archive(user=user, source_id=source.pk,
                                                         archive=Path(raw).resolve())
            if created:
                if _URL.match(raw):
                    source = services.source_create(user=user, kind="url", location=raw, name=opts["name"])
                elif Path(raw).is_file() and _ARCHIVE.search(raw):
                    source = services.source_create(user=user, kind="archive", archive=Path(raw).resolve(),
                                                    name=opts["name"])
                else:
                    source = services.source_create(user=user, kind="path",
                                                    location=str(Path(raw).expanduser().resolve()),
                                                    name=opts["name"])
                if not opts["json"]:
                    self.stderr.write(f"Registered source {source.pk} ({source.name}).")
            services.generation_prefetch(source=source)  # the tokenizer loads while the analysis runs
            from apps.core.cli_progress import job_progress

            # a progress bar per job (analysis, then generation) on a terminal; one line per phase otherwise
            with job_progress(getattr(self.stderr, "_out", sys.stderr), enabled=not opts["json"]):
                analysis = services.analysis_start(user=user, source_id=source.pk, inline=True)
                if analysis.status != JobStatus.SUCCEEDED:
                    self._fail(opts, f"The analysis failed: {analysis.error or analysis.status}", "analysis_failed",
                               source_id=source.pk)
                gen = services.generation_start(user=user, source_id=source.pk, options=options, inline=True)
        except ApplicationError as exc:
            self._fail(opts, exc.message, exc.code, errors=exc.errors)
        if gen.status != JobStatus.SUCCEEDED:
            self._fail(opts, gen.error or f"The generation {gen.status}.", gen.error_code or "generation_failed",
                       source_id=source.pk, generation_id=gen.pk)
        report = dict(gen.report or {})
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        s = gen.summary or {}
        self.stderr.write(f"Generation {gen.pk}: {report.get('totalScenarios')} scenarios in dataset "
                          f"{report.get('dataset_id')} version {report.get('version_number')} "
                          f"(+{s.get('added', 0)} ~{s.get('changed', 0)} -{s.get('removed', 0)}, "
                          f"{s.get('kept', 0)} kept); bundle: {services.work_dir(gen.pk) / services.BUNDLE_ZIP}")
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
