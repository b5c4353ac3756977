"""The hyperparameter table: every hyperparameter a training run accepts, defined once. Knows nothing of Django.

Contract: `TABLE` (ordered; `BY_NAME` maps a name to its row) says, per hyperparameter, its type, bounds
(with exclusive flags), choices, local default per method (continued runs scale the learning rate by
`CONTINUE_LR_FACTOR`), help text, form group and widget hints, which methods and backends use it, and how it
is sent to Together.ai (field name, aliases, Together's own bounds and default, wire transform).
Everything else is derived from it, here or in the apps:

- `check(spec, value, backend=)` parses one value or returns the message shown to the user (the same
  message in the form, in /api 422 bodies and from the Together mapping);
- `clean_local(...)` validates a local run's hyperparameters and returns the effective configuration it
  stores (every value the engine will use); keys that do not apply to the method are ignored;
- `local_defaults(...)` is what empty inputs mean; `ENGINE_DEFAULTS` is what the engine falls back to;
- `together_fields(...)` validates and maps a run's hyperparameters onto Together's POST /fine-tunes body;
  `together_effective(...)` is what a Together run stores (the table's names, the values sent);
- `markdown_table()` is the reference table in the README (`manage.py hyperparameters --markdown`).

The apps derive the API schema (apps/training/hyperparameters.py), the form fields (apps/training/forms.py)
and validation with field paths `hyperparameters.<name>` (apps/training/services/hyperparameters.py).

The package, by concern: `schema` (what a row is), `table` (the rows and lookups), `values` (one value),
`local` (local runs), `together` (Together.ai), `docs` (the README's table). Import from the package: the
names below are its public surface.
"""
from workers.engine.hyperparameters.docs import default_text, markdown_table, together_text
from workers.engine.hyperparameters.local import ENGINE_DEFAULTS, clean_local, local_defaults, unknown_message
from workers.engine.hyperparameters.schema import (
    BACKEND_METHODS,
    BACKENDS,
    CONTINUE_LR_FACTOR,
    GROUPS,
    LR_SCHEDULERS,
    METHODS,
    RUN_OPTIONS,
    Bounds,
    Hyperparameter,
    Together,
)
from workers.engine.hyperparameters.table import BY_NAME, TABLE, TOGETHER_NAMES, applicable, grouped
from workers.engine.hyperparameters.together import (
    TRAINING_METHOD_FIELDS,
    together_effective,
    together_field_names,
    together_fields,
    unknown_names,
)
from workers.engine.hyperparameters.values import check

__all__ = [
    "BACKENDS", "BACKEND_METHODS", "BY_NAME", "Bounds", "CONTINUE_LR_FACTOR", "ENGINE_DEFAULTS", "GROUPS",
    "Hyperparameter", "LR_SCHEDULERS", "METHODS", "RUN_OPTIONS", "TABLE", "TOGETHER_NAMES", "Together",
    "TRAINING_METHOD_FIELDS",
    "applicable", "check", "clean_local", "default_text", "grouped", "local_defaults", "markdown_table",
    "together_effective", "together_field_names", "together_fields", "together_text", "unknown_message",
    "unknown_names",
]
