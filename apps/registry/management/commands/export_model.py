"""python manage.py export_model VERSION --format adapter|merged|gguf [--quantization q8_0] [--json] [--worker]
[--user NAME] [--strict]

VERSION is a model version id, `mv-<id>`, an alias name (the version it serves) or a version's exact name. The export
is created (as --user, default `admin`, else the first superuser or admin) and its job runs in this process (no
worker needed; --worker: it goes to the gpu worker and this command waits for it), with its phases and progress on
stderr. Exits 0 when the export succeeded or is degraded (--strict: degraded exits 3), 1 when it failed or was
cancelled or could not be started.

--json prints only one JSON object on stdout: {"status", "path" (absolute, the file or folder; null unless it
finished), "size_bytes", "checks": {...}}, plus "error" when it failed."""
from __future__ import annotations

import json
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

POLL_S = 1.0


class _Progress:
    """Prints phases and progress on stderr: a rich progress bar on a terminal, else one line per phase."""

    def __init__(self, stream, *, quiet: bool):
        self.stream, self.quiet, self.phase, self._bar, self._task = stream, quiet, None, None, None
        if not quiet and getattr(stream, "isatty", lambda: False)():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

                self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                     TimeElapsedColumn(), console=Console(file=stream), transient=False)
                self._bar.start()
            except ImportError:
                self._bar = None

    def __call__(self, phase, progress) -> None:
        if self.quiet:
            return
        if phase and phase != self.phase:
            self.phase = phase
            if self._bar is not None:
                self._task = self._bar.add_task(phase, total=None, info="")
            else:
                self.stream.write(f"· {phase}\n")
                self.stream.flush()
        if progress and self._bar is not None and self._task is not None:
            total = progress.get("total")
            info = " ".join(str(x) for x in (progress.get("unit") or "", (progress.get("message") or "")[:60]) if x)
            self._bar.update(self._task, completed=progress.get("current") or 0, total=total or None, info=info)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class Command(BaseCommand):
    help = "Export a model version (adapter, merged weights or GGUF), check it against the version, print the result."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("version", help="a model version id, mv-<id>, an alias or a version name")
        parser.add_argument("--format", required=True, choices=["adapter", "merged", "gguf"])
        parser.add_argument("--quantization", default=None, help="GGUF only: f16, q8_0 (default), q4_k_m, ...")
        parser.add_argument("--json", action="store_true", help="print only the JSON result")
        parser.add_argument("--worker", action="store_true", help="let the gpu worker run it and wait")
        parser.add_argument("--strict", action="store_true", help="exit 3 when the export is degraded")
        parser.add_argument("--user", default=None, help="who exports it (default: admin or the first superuser)")

    def _emit(self, opts, status: str, *, path=None, size=None, checks=None, error: str | None = None) -> None:
        if opts["json"]:
            body = {"status": status, "path": path, "size_bytes": size, "checks": checks or {}}
            if error:
                body["error"] = error
            self.stdout.write(json.dumps(body, ensure_ascii=False))
        elif error:
            self.stderr.write(f"Export {status}: {error}")

    def _fail(self, opts, message: str) -> None:
        self._emit(opts, "failed", error=message)
        sys.exit(1)

    def _user(self, opts):
        User = get_user_model()
        if opts["user"]:
            user = User.objects.filter(username=opts["user"]).first()
            if user is None:
                self._fail(opts, f"No user {opts['user']!r}.")
            return user
        user = (User.objects.filter(username="admin").first()
                or User.objects.filter(is_superuser=True).order_by("pk").first()
                or User.objects.filter(role="admin").order_by("pk").first())
        if user is None:
            self._fail(opts, "No `admin` user and no admin or superuser exists: create one, or pass --user.")
        return user

    def _version_id(self, opts, raw: str) -> int:
        from apps.registry.models import Alias, ModelVersion

        text = raw.strip()
        digits = text[3:] if text.lower().startswith("mv-") else text
        if digits.isascii() and digits.isdigit():
            return int(digits)
        alias = Alias.objects.filter(name=text).first()
        if alias is not None:
            return alias.model_version_id
        ids = list(ModelVersion.objects.filter(name=text).values_list("pk", flat=True)[:2])
        if len(ids) == 1:
            return ids[0]
        self._fail(opts, f"No model version {raw!r}." if not ids else f"Several versions are named {raw!r}: use an id.")

    def handle(self, *args, **opts):
        from apps.core.exceptions import ApplicationError
        from apps.registry.exports import services
        from apps.registry.models import Export

        user = self._user(opts)
        version_id = self._version_id(opts, opts["version"])
        progress = _Progress(self.stderr._out if hasattr(self.stderr, "_out") else sys.stderr, quiet=opts["json"])
        try:
            export = services.export_create(actor=user, model_version_id=version_id, format=opts["format"],
                                            quantization=opts["quantization"], inline=not opts["worker"],
                                            listener=progress)
            if opts["worker"]:
                export = self._wait(export.pk, progress)
        except ApplicationError as exc:
            errors = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors if e.get("field"))
            self._fail(opts, errors or exc.message)
        finally:
            progress.close()
        path = services.export_abspath(export)
        ok = export.status in (Export.Status.SUCCEEDED, Export.Status.DEGRADED)
        self._emit(opts, export.status, path=str(path) if ok and path else None, size=export.size_bytes if ok else None,
                   checks=export.checks or {}, error=None if ok else (export.error or export.status))
        if not opts["json"] and ok:
            from apps.registry.exports.checks import summary

            self.stdout.write(f"Export #{export.pk} {export.status}: {path} ({export.size_bytes} bytes)")
            self.stdout.write(f"Checks: {summary(export.checks or {})}")
            for reason in (export.checks or {}).get("reasons") or []:
                self.stdout.write(f"  degraded: {reason}")
        if not ok:
            sys.exit(1)
        if opts["strict"] and export.status == Export.Status.DEGRADED:
            sys.exit(3)

    def _wait(self, export_id: int, progress: _Progress):
        from apps.registry.exports import services
        from apps.registry.models import Export

        last = None
        while True:
            export = Export.objects.get(pk=export_id)
            job = services.export_job(export)
            if job is not None and (job.phase, job.progress) != last:
                last = (job.phase, job.progress)
                progress(job.phase, job.progress or None)
            if export.status not in services.ACTIVE:
                return export
            time.sleep(POLL_S)
