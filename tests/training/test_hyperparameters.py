"""The hyperparameter table and everything derived from it: bounds enforced alike by /api and the form, the
OpenAPI schema, the fields the form shows per method and backend, the stored configuration, the engine's
defaults, the Together request and the README's generated table. Table-driven: a row added to the table is
covered here without a new test."""
from __future__ import annotations

import html
import re

import pytest

from apps.training.hyperparameters import BACKEND_METHODS, METHODS, TABLE, applicable, check, markdown_table
from apps.training.models import TrainingRun
from workers.engine.hyperparameters import GROUPS, Bounds, clean_local, together_fields

NUMERIC = [s for s in TABLE if s.type in ("int", "float")]
LOCAL_NUMERIC = [s for s in NUMERIC if "local" in s.backends]
TOGETHER_NUMERIC = [s for s in NUMERIC if s.together is not None]
JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "choice": "string", "str": "string"}


def _out_of_bounds(bounds: Bounds) -> list[tuple[str, float]]:
    cases = []
    if bounds.min is not None:
        cases.append(("below", bounds.min if bounds.min_exclusive else bounds.min - 1))
    if bounds.max is not None:
        cases.append(("above", bounds.max if bounds.max_exclusive else bounds.max + 1))
    return cases


def _plain(x: float):
    return int(x) if float(x).is_integer() else x


LOCAL_CASES = [pytest.param(s, v, id=f"{s.name}-{side}") for s in LOCAL_NUMERIC
               for side, v in _out_of_bounds(s.bounds)]
TOGETHER_CASES = [pytest.param(s, v, id=f"{s.name}-{side}") for s in TOGETHER_NUMERIC
                  for side, v in _out_of_bounds(s.together_bounds())]


# --- the table itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", TABLE, ids=lambda s: s.name)
def test_every_row_is_complete_and_its_defaults_are_valid(spec):
    assert spec.type in ("int", "float", "bool", "choice", "str", "modules", "prompts", "weights", "size")
    assert spec.label and spec.help and spec.group in dict(GROUPS)
    assert set(spec.methods) <= set(METHODS) and set(spec.backends) <= set(BACKEND_METHODS)
    assert (spec.together is not None) == ("together" in spec.backends)
    if spec.type in ("int", "float"):
        assert spec.bounds is not None
    if spec.type == "choice":
        assert spec.choices
    for method in spec.methods:
        if "local" in spec.backends:
            value = spec.default_for(method)
            assert value is not None and check(spec, value) == (value, None), method
    assert check(spec, spec.sample(), backend=spec.backends[0])[1] is None


@pytest.mark.parametrize("spec", LOCAL_NUMERIC, ids=lambda s: s.name)
def test_bounds_are_inclusive_or_exclusive_as_the_table_says(spec):
    b = spec.bounds
    step = 1 if spec.type == "int" else 1e-9
    if b.min is not None:
        assert (check(spec, b.min)[1] is None) == (not b.min_exclusive)
        assert check(spec, b.min + step)[1] is None
    if b.max is not None:
        assert (check(spec, b.max)[1] is None) == (not b.max_exclusive)
    if spec.type == "int":
        assert check(spec, (b.min or 0) + 1.5)[1] == "Must be a whole number."
    assert check(spec, "x")[1] == "Must be a number." and check(spec, True)[1] == "Must be a number."
    assert check(spec, float("nan"))[1] == "Must be a finite number."


def test_engine_defaults_come_from_the_table():
    from workers.engine.sft import DEFAULTS, hp_with_defaults

    local = {s.name for s in TABLE if "local" in s.backends}
    assert set(DEFAULTS) == local
    assert DEFAULTS["learning_rate"] == TABLE[[s.name for s in TABLE].index("learning_rate")].default["lora"]
    assert hp_with_defaults({"lora_r": 4})["lora_r"] == 4 and hp_with_defaults({})["lora_r"] == 8


# --- validation: /api and the form alike ---------------------------------------------------------------------
def _field_errors(page: str, name: str) -> list[str]:
    box = re.search(rf'<div class="hp-field" data-field="{name}"[^>]*>(.*?)</div>', page, re.S)
    assert box, f"no input for {name}"
    return [html.unescape(m) for m in re.findall(r"<li>(.*?)</li>", box.group(1), re.S)]


def _api_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.content
    return {e["field"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.django_db
@pytest.mark.parametrize("spec,value", LOCAL_CASES)
def test_local_bounds_are_enforced_by_api_and_form_alike(api, member, qa_version, tiny_base_model, spec, value):
    method = spec.methods[0]
    target = {"base_model": "tiny"} if method != "scratch" else {}
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "method": method, **target,
                                        "hyperparameters": {spec.name: _plain(value)}},
                 content_type="application/json")
    message = _api_errors(r)[f"hyperparameters.{spec.name}"]
    assert message.startswith("Must be ") and f"(got {_plain(value)})" in message
    # the same value at the top level of the body
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "method": method, **target,
                                        spec.name: _plain(value)}, content_type="application/json")
    assert _api_errors(r)[f"hyperparameters.{spec.name}"] == message

    api.force_login(member)
    r = api.post("/runs/new/", {"dataset_version": qa_version.pk, "method": method, "backend": "local", **target,
                                spec.name: str(_plain(value)), "action": "estimate"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422
    assert _field_errors(r.content.decode(), spec.name) == [message]
    assert TrainingRun.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("spec,value", TOGETHER_CASES)
def test_together_bounds_are_enforced_by_api_and_form_alike(api, member, qa_version, settings, spec, value):
    settings.TOGETHER_API_KEY = "test-key"
    method = next(m for m in BACKEND_METHODS["together"] if spec.applies(m, "together"))  # beta: dpo only
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "method": method, "backend": "together",
                                        "base_model": "m", "hyperparameters": {spec.name: _plain(value)}},
                 content_type="application/json")
    message = _api_errors(r)[f"hyperparameters.{spec.name}"]
    assert message.startswith(f"{spec.label} must be ") and f"(got {_plain(value)})" in message

    api.force_login(member)
    r = api.post("/runs/new/", {"dataset_version": qa_version.pk, "method": method, "backend": "together",
                                "remote_model": "m", spec.name: str(_plain(value)), "action": "estimate"},
                 HTTP_HX_REQUEST="true")
    assert r.status_code == 422
    assert _field_errors(r.content.decode(), spec.name) == [message]


@pytest.mark.django_db
@pytest.mark.parametrize("name,value", [("lr_scheduler", "zigzag"), ("size", "colossal")])
def test_choices_are_enforced_by_api_and_form_alike(api, member, qa_version, tiny_base_model, name, value):
    method = "scratch" if name == "size" else "lora"
    target = {"base_model": "tiny"} if method != "scratch" else {}
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "method": method, **target,
                                        "hyperparameters": {name: value}}, content_type="application/json")
    message = _api_errors(r)[f"hyperparameters.{name}"]
    assert "choose one of" in message.lower()
    api.force_login(member)
    r = api.post("/runs/new/", {"dataset_version": qa_version.pk, "method": method, "backend": "local", **target,
                                name: value, "action": "estimate"}, HTTP_HX_REQUEST="true")
    assert _field_errors(r.content.decode(), name) == [message]


# --- the OpenAPI schema ----------------------------------------------------------------------------------------
@pytest.fixture
def openapi(api):
    return api.get("/api/openapi.json").json()["components"]["schemas"]


def _typed_branch(prop: dict, json_type: str) -> dict:
    branches = prop.get("anyOf", [prop])
    return next(b for b in branches if b.get("type") == json_type)


@pytest.mark.django_db
@pytest.mark.parametrize("spec", TABLE, ids=lambda s: s.name)
def test_schema_documents_every_row(openapi, spec):
    props = [openapi["HyperparametersIn"]["properties"][spec.name]]
    if spec.in_form:
        props.append(openapi["RunIn"]["properties"][spec.name])
    for prop in props:
        assert prop["x-methods"] == list(spec.methods) and prop["x-backends"] == list(spec.backends)
        assert prop["description"].startswith(spec.help)
        if spec.type in JSON_TYPES:
            branch = _typed_branch(prop, JSON_TYPES[spec.type])
            if spec.bounds:
                bound_keys = {k: v for k, v in branch.items()
                              if k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")}
                assert bound_keys == spec.bounds.json_schema()
            if spec.choices:
                assert branch["enum"] == list(spec.choices)
        if spec.together:
            assert spec.together.field in prop["description"]


@pytest.mark.django_db
def test_schema_types_are_enforced(api, qa_version, tiny_base_model):
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "base_model": "tiny",
                                        "hyperparameters": {"max_steps": "many"}}, content_type="application/json")
    assert "hyperparameters.max_steps" in _api_errors(r)


# --- which fields apply --------------------------------------------------------------------------------------
@pytest.fixture
def logged_in(client, member):
    client.force_login(member)
    return client


def _inputs(page: str) -> dict[str, tuple[bool, bool]]:
    """{name: (visible, enabled)} of every hyperparameter input on the page."""
    out = {}
    for attrs, body in re.findall(r'<div class="hp-field" data-field="[^"]+"([^>]*)>(.*?)</div>', page, re.S):
        tag = re.search(r"<(?:input|select|textarea)[^>]*>", body).group(0)
        name = re.search(r'name="([^"]+)"', tag).group(1)
        out[name] = (" hidden" not in attrs, " disabled" not in tag)
    return out


COMBINATIONS = [(m, b) for b in BACKEND_METHODS for m in BACKEND_METHODS[b]]


@pytest.mark.django_db
@pytest.mark.parametrize("method,backend", COMBINATIONS)
def test_form_shows_only_the_rows_the_method_and_backend_use(logged_in, qa_version, tiny_base_model, method,
                                                             backend):
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": method, "backend": backend,
                                      "action": "estimate"}, HTTP_HX_REQUEST="true")
    inputs = _inputs(r.content.decode())
    shown = {name for name, (visible, enabled) in inputs.items() if visible and enabled}
    hidden = {name for name, (visible, enabled) in inputs.items() if not visible and not enabled}
    rows = {s.name for s in TABLE if s.in_form}
    assert rows <= set(inputs)
    assert shown & rows == {s.name for s in applicable(method, backend) if s.in_form}
    assert hidden | shown == set(inputs)  # never half hidden


@pytest.mark.django_db
def test_each_input_carries_the_methods_and_backends_that_use_it(logged_in, qa_version):
    page = logged_in.get(f"/runs/new/?dataset_version={qa_version.pk}").content.decode()
    for spec in TABLE:
        if spec.in_form:
            assert (f'data-field="{spec.name}" data-methods="{" ".join(spec.methods)}" '
                    f'data-backends="{" ".join(spec.backends)}"') in page
    # no inline script or handler (the pages run under a strict Content-Security-Policy)
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+=", page) and "js/run_form" in page


@pytest.mark.django_db
@pytest.mark.parametrize("method,ignored", [
    ("full", {"lora_r": "-5", "size": "colossal", "vocab_size": "1", "suffix": "not valid!"}),
    ("scratch", {"lora_r": "-5", "lora_dropout": "7", "n_checkpoints": "0"}),
    ("lora", {"vocab_size": "1", "size": "colossal"}),
])
def test_form_ignores_rows_the_method_does_not_use(logged_in, qa_version, tiny_base_model, method, ignored):
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": method, "base_model": "tiny",
                                      "backend": "local", "max_steps": "2", "action": "create", **ignored})
    assert r.status_code == 302, r.content.decode()[-2000:]
    hp = TrainingRun.objects.get().hyperparameters
    assert hp["max_steps"] == 2 and not set(ignored) & set(hp)


@pytest.mark.django_db
def test_form_on_together_ignores_local_rows(logged_in, qa_version, settings):
    settings.TOGETHER_API_KEY = "test-key"
    r = logged_in.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "full", "backend": "together",
                                      "remote_model": "m", "max_seq_len": "-1", "lr_scheduler": "zigzag",
                                      "epochs": "2", "action": "create"})
    assert r.status_code == 302, r.content.decode()[-2000:]
    hp = TrainingRun.objects.get().hyperparameters
    assert hp == {"model": "m", "epochs": 2, "learning_rate": 1e-5, "batch_size": "max"}


@pytest.mark.django_db
def test_api_ignores_rows_the_method_does_not_use(api, qa_version, tiny_base_model):
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "base_model": "tiny", "method": "full",
                                        "hyperparameters": {"lora_r": -5, "vocab_size": 1}},
                 content_type="application/json")
    assert r.status_code == 200, r.content
    assert not {"lora_r", "vocab_size"} & set(r.json()["hyperparameters"])
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "base_model": "tiny",
                                        "hyperparameters": {"nonsense": 1}}, content_type="application/json")
    assert _api_errors(r) == {"hyperparameters.nonsense": "Unknown hyperparameter 'nonsense'."}


# --- what is stored ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_stored_configuration_is_every_row_the_method_uses(method):
    from apps.training.services import CONTINUE_LR_FACTOR, run_default_hyperparameters

    hp = run_default_hyperparameters(method=method)
    assert set(hp) == {s.name for s in applicable(method, "local")}
    lr = {s.name: s for s in TABLE}["learning_rate"].default[method]
    assert hp["learning_rate"] == lr
    continued = run_default_hyperparameters(method=method, continuing=True)["learning_rate"]
    assert continued == (lr if method == "scratch" else lr * CONTINUE_LR_FACTOR)


def test_clean_local_reports_every_problem_with_the_table_messages():
    out, errors = clean_local({"batch_size": 0, "lora_r": 65, "max_seq_len": 300, "bogus": 1, "epochs": "2"},
                              method="lora", limits={"hidden_size": 64, "context_length": 256})
    assert dict(errors) == {
        "batch_size": "Must be at least 1 and at most 4096 (got 0).",
        "lora_r": "lora_r (65) cannot exceed the model's hidden size (64).",
        "max_seq_len": "max_seq_len (300) exceeds the model's context length (256).",
        "bogus": "Unknown hyperparameter 'bogus'.",
    }
    assert out["epochs"] == 2.0 and out["max_seq_len"] == 256  # parsed; the default capped by the context


@pytest.mark.django_db
def test_together_run_stores_the_values_sent_under_the_tables_names(member, qa_version, settings):
    from apps.training import services

    settings.TOGETHER_API_KEY = "test-key"
    run = services.run_create(user=member, dataset_version_id=qa_version.pk, backend="together", base_model="m",
                              hyperparameters={"n_epochs": "3", "lora_trainable_modules": ["q_proj", "v_proj"],
                                               "max_seq_len": 512})
    assert run.hyperparameters == {"model": "m", "epochs": 3, "learning_rate": 1e-5, "batch_size": "max",
                                   "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                                   "target_modules": "q_proj,v_proj"}
    assert run.summary["estimate"]["cost"]["epochs"] == 3
    with pytest.raises(Exception) as info:
        services.run_create(user=member, dataset_version_id=qa_version.pk, backend="together", base_model="m",
                            hyperparameters={"n_epoch": 3})
    assert {"field": "hyperparameters.n_epoch", "message": "Unknown hyperparameter 'n_epoch'."} in info.value.errors


@pytest.mark.django_db
def test_api_passes_together_aliases_through(api, qa_version, settings):
    settings.TOGETHER_API_KEY = "test-key"
    r = api.post("/api/runs/estimate", {"dataset_version_id": qa_version.pk, "backend": "together", "base_model": "m",
                                        "hyperparameters": {"n_epochs": 3, "lora_trainable_modules": ["q_proj"]}},
                 content_type="application/json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["hyperparameters"]["epochs"] == 3 and body["hyperparameters"]["target_modules"] == "q_proj"
    assert body["estimate"]["cost"]["epochs"] == 3


# --- the Together request ------------------------------------------------------------------------------------
def _together_rows(method):
    return [s for s in TABLE if s.together and s.applies(method, "together")]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_together_request_sends_exactly_the_tables_fields(method):
    from apps.training.backends.together import together_job_request

    rows = _together_rows(method)
    local_only = {s.name: s.sample() for s in TABLE if "together" not in s.backends}
    hp = {**local_only, **{s.name: s.sample() for s in rows}}
    body = together_job_request(hyperparameters=hp, method=method, training_file="file-1")
    body_fields = {s.together.field for s in rows if s.together.section == "body"}
    lora_fields = {s.together.field for s in rows if s.together.section == "training_type"}
    assert set(body) == body_fields | {"training_file", "training_type", "training_method"}
    assert set(body["training_type"]) == {"type"} | lora_fields
    assert body["training_type"]["type"] == ("Lora" if method == "lora" else "Full")
    assert bool(lora_fields) == (method == "lora")
    for spec in rows:
        t = spec.together
        sent = (body["training_type"] if t.section == "training_type" else body)[t.field]
        expected = check(spec, spec.sample(), backend="together")[0]
        assert sent == (t.transform(expected) if t.transform else expected), spec.name


@pytest.mark.parametrize("method", ["lora", "full"])
def test_together_request_defaults_and_aliases(method):
    from apps.training.backends.together import together_job_request

    rows = _together_rows(method)
    body = together_job_request(hyperparameters={"model": "m"}, method=method)
    sent = {**{k: v for k, v in body.items() if k not in ("training_type", "training_method", "training_file")},
            **{k: v for k, v in body["training_type"].items() if k != "type"}}
    assert set(sent) == {s.together.field for s in rows if s.together.sends_default or s.together.required}
    for spec in rows:
        for alias in spec.together.aliases:
            given = {"model": "m", alias: spec.sample()} if spec.name != "model" else {alias: spec.sample()}
            fields, lora, errors = together_fields(given, method=method)
            assert not errors and spec.together.field in {**fields, **lora}, alias


def test_together_request_refuses_scratch_and_names_the_field_given():
    from apps.core.exceptions import ValidationFailed
    from apps.training.backends.together import together_job_request

    with pytest.raises(ValidationFailed) as info:
        together_job_request(hyperparameters={"model": "m", "num_train_epochs": 0}, method="scratch",
                             field_prefix="hyperparameters.")
    assert {e["field"] for e in info.value.errors} == {"method"}  # scratch uses no Together row
    with pytest.raises(ValidationFailed) as info:
        together_job_request(hyperparameters={"model": "m", "num_train_epochs": 0}, method="full",
                             field_prefix="hyperparameters.")
    assert info.value.errors == [{"field": "hyperparameters.num_train_epochs",
                                  "message": "Epochs must be a whole number from 1 to 100 (got 0)."}]


# --- docs ----------------------------------------------------------------------------------------------------
def test_readme_table_is_generated_from_the_table():
    from apps.training.management.commands.hyperparameters import readme_path, readme_section

    assert readme_section(readme_path().read_text(encoding="utf-8")) == markdown_table(), \
        "README.md is out of date: run `python manage.py hyperparameters --write`"
    for spec in TABLE:
        assert f"| `{spec.name}` |" in markdown_table()


def test_management_command_prints_and_checks(capsys):
    from django.core.management import call_command

    call_command("hyperparameters", "--markdown")
    assert capsys.readouterr().out == markdown_table()
    call_command("hyperparameters", "--check")
    assert "up to date" in capsys.readouterr().out
