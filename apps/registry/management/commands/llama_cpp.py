"""`python manage.py llama_cpp status|build`: where this machine's llama.cpp stands (the pinned build in
HUB_MODEL_CACHE, or HUB_LLAMA_CPP_DIR), and building it now instead of on first need (an export or the first GGUF
deploy builds it otherwise). The build shows the compile's progress; a failed one prints the compiler's last lines."""
from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers.engine.llamacpp import toolchain


class Command(BaseCommand):
    help = "Show or build the pinned llama.cpp (GGUF export and fast CPU serving)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "build"])
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, action: str, json: bool = False, **options):
        cache = settings.HUB_MODEL_CACHE
        if action == "status":
            status = toolchain.build_status(model_cache=cache)
            tc = toolchain.find(model_cache=cache)
            if tc:
                status.update(tc.as_dict())
            self.stdout.write(_dumps(status) if json else
                              f"llama.cpp {status.get('version') or '?'}: {status['state']}"
                              + (f" ({status['root']})" if tc else "")
                              + (f"\n{status['log_tail']}" if status.get("log_tail") else ""))
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("llama.cpp {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), disable=json) as bar:
            task = bar.add_task(toolchain.PINNED_VERSION, total=None)

            def report(done: int, total: int, line: str) -> None:
                bar.update(task, completed=done, total=total or None)

            try:
                tc = toolchain.ensure(model_cache=cache, report=report)
            except toolchain.LlamaCppError as exc:
                raise CommandError(f"{exc.message}\n{exc.log_tail}") from exc
        self.stdout.write(_dumps(tc.as_dict()) if json else f"llama.cpp {tc.version} ready in {tc.bin_dir}")


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2)
