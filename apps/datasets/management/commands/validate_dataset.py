"""Validate a file, folder or zip without importing it.

`--json` prints one JSON object {"format", "examples", "errors": [...], "warnings": [...]}; the exit
status is 0 without errors and 1 with errors.
"""
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.datasets.formats import FORMATS, TARGETS


class Command(BaseCommand):
    help = "Validate PATH (file, folder or zip); exit 1 when there are errors."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--target", choices=TARGETS, default="local")
        parser.add_argument("--base-model", dest="base_model", help="Base model id (or a Hugging Face folder) "
                            "whose tokenizer and chat template count tokens")
        parser.add_argument("--format", choices=sorted(FORMATS))
        parser.add_argument("--json", action="store_true", dest="as_json")
        parser.add_argument("--structure-only", action="store_true",
                            help="Format checks only: no tokenizer, no duplicates, no personal-data scan")

    def handle(self, *args, path, target, base_model, format, as_json, structure_only, **opts):
        from apps.datasets.validation import validate_path
        from apps.datasets.validation.tokens import counter_for_base_model

        p = Path(path)
        if not p.exists():
            raise CommandError(f"{path} does not exist.")
        counter = None
        if not structure_only:
            counter = counter_for_base_model(base_model)
            if counter is None and base_model:
                raise CommandError(f"Unknown base model {base_model!r} (not registered and not a model folder).")
        result = validate_path(p, target=target, structure_only=structure_only, counter=counter, format=format,
                               display=p.name)
        if counter is None and not structure_only:
            result.report.warn("no_tokenizer", "No base model tokenizer available: token counts skipped.", line=None)
        d = result.as_dict()
        out = {"format": d["format"], "examples": d["examples"],
               "errors": [{k: i.get(k) for k in ("line", "code", "message", "file")} for i in d["errors"]],
               "warnings": [{k: i.get(k) for k in ("line", "code", "message", "file")} for i in d["warnings"]]}
        if as_json:
            if not structure_only:
                out["stats"] = result.stats
            out["error_total"], out["warning_total"] = d["error_total"], d["warning_total"]
            self.stdout.write(json.dumps(out))
        else:
            self.stdout.write(f"{p.name}: format {d['format']}, {d['examples']} examples, "
                              f"{d['error_total']} errors, {d['warning_total']} warnings")
            for sev, items in (("ERROR", out["errors"]), ("warning", out["warnings"])):
                for i in items:
                    where = f"{i.get('file') or p.name}:{i['line']}" if i.get("line") else (i.get("file") or p.name)
                    self.stdout.write(f"  {sev:7} {where} [{i['code']}] {i['message']}")
            if d["truncated"]:
                self.stdout.write(f"  ... {d['truncated']} more (see counts)")
            tok = result.stats.get("tokens")
            if tok:
                self.stdout.write(f"tokens ({tok['base_model']}): total {tok['total']}, mean {tok['mean']}, "
                                  f"max {tok['max']}, over context {tok['too_long']}")
        sys.stdout.flush()
        if d["error_total"]:
            sys.exit(1)
