"""The tool registry: builtin tools, scans of dataset versions (OpenAI, Hermes and bracket calls; shapes, counts,
idempotency), admins' definitions and their schema checks, the markdown docs, dataset validation against the
registry, and tool-call evaluation with the registry's schemas."""
from __future__ import annotations

import json
import time

import pytest

from apps.core.exceptions import Conflict, PermissionDenied, ValidationFailed
from apps.registry.models import Tool
from apps.registry.tools import selectors, services
from apps.registry.tools.builtin import BUILTIN_TOOLS
from tests.factories import DatasetVersionFactory

pytestmark = pytest.mark.django_db

U = {"role": "user", "content": "Please help me with this."}


def call(name, args, cid="c1"):
    return {"id": cid, "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}


def ex(*assistant):
    return {"messages": [U, *assistant]}


def weather_version(owner):
    """5 get_weather calls (one without `days`, one with arguments that are not JSON), a bracket roll, a bracket
    call of an unknown tool, prose in brackets, and a Hermes block."""
    return DatasetVersionFactory(owner=owner, examples=[
        ex({"role": "assistant", "content": None, "tool_calls": [call("get_weather", {"city": "Paris", "days": 3})]}),
        ex({"role": "assistant", "content": None, "tool_calls": [call("get_weather", {"city": "Oslo", "days": 2}),
                                                                 call("get_weather", {"city": "Rome", "days": 1}, "c2")]}),
        ex({"role": "assistant", "content": None, "tool_calls": [call("get_weather", {"city": "Lima"})]}),
        ex({"role": "assistant", "content": None, "tool_calls": [call("get_weather", "{not json")]}),
        ex({"role": "assistant", "content": "The goblin attacks! [roll: d20+5] Then [lookup_rule: grapple, prone] "
                                            "[Note: this is prose] and [a link](http://x)"}),
        ex({"role": "assistant", "content": 'Searching. <tool_call>{"name": "search", "arguments": {"q": "elves", '
                                            '"limit": 5}}</tool_call>'}),
        ex({"role": "user", "content": "[roll: d6] in a user turn is not a call"}),
    ])


def test_builtins_are_seeded_lazily_with_real_schemas_and_the_scenario_reader_still_parses(tmp_path):
    assert not Tool.objects.exists()
    tools = {t.name: t for t in selectors.tool_list()}
    assert set(tools) == set(BUILTIN_TOOLS) and {t.origin for t in tools.values()} == {"builtin"}
    assert tools["health"].parameters["required"] == ["target", "amount"]
    assert tools["inventory"].parameters["properties"]["action"]["enum"][0] == "add"
    assert services.tool_registry_ensure_builtins() == 0  # idempotent

    from apps.datasets.formats.base import Report
    from apps.datasets.formats.scenario import TOOL_REGISTRY, parse_scenarios

    assert TOOL_REGISTRY["save"]["params"] == ["ability", "target", "dc"]
    rep = Report()
    text = "# USER\nI attack\n# DM\nRoll it [roll: D20+5] and [inventory: Sara, Add, rope] [health: orc, lots]\n"
    exs = list(parse_scenarios(text, file="s.md", report=rep))
    calls = exs[0]["messages"][1]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"dice": "D20+5"}, {"character": "Sara", "action": "Add", "item": "rope"}]
    assert [e["code"] for e in rep.errors] == ["malformed_tool_call"]  # `lots` is not a signed amount


def test_scan_finds_openai_hermes_and_bracket_calls_with_shapes_and_counts(admin_user):
    v = weather_version(admin_user)
    result = services.tool_scan(actor=admin_user, dataset_version_id=v.pk)
    assert result["examples"] == 7 and result["calls"] == 8
    assert sorted(result["created"]) == ["get_weather", "lookup_rule", "search"]

    w = Tool.objects.get(name="get_weather")
    assert w.origin == "scan" and w.call_format == "openai"
    obs = w.observed
    assert obs["calls"] == 5 and obs["invalid_arguments"] == 1 and obs["datasets"] == {str(v.pk): 5}
    assert obs["argument_shapes"] == {"city": {"types": {"string": 4}, "present": 4},
                                      "days": {"types": {"integer": 3}, "present": 3}}
    assert w.parameters == {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                            "required": ["city"]}
    assert len(obs["examples"]) == 3 and obs["examples"][0]["arguments"] == {"city": "Paris", "days": 3}
    assert obs["examples"][0]["example_index"] == 0

    roll = Tool.objects.get(name="roll")  # a builtin: counted, its schema untouched
    assert roll.origin == "builtin" and roll.parameters == BUILTIN_TOOLS["roll"]["parameters"]
    assert roll.observed["calls"] == 1 and roll.observed["argument_shapes"]["dice"]["types"] == {"string": 1}
    rule = Tool.objects.get(name="lookup_rule")
    assert rule.call_format == "bracket" and rule.parameters["properties"]["args"]["type"] == "array"
    assert rule.observed["examples"][0]["arguments"] == {"args": ["grapple", "prone"]}
    search = Tool.objects.get(name="search")
    assert search.call_format == "hermes" and search.parameters["required"] == ["limit", "q"]
    assert not Tool.objects.filter(name__in=["Note", "a"]).exists()

    again = services.tool_scan(actor=admin_user, dataset_version_id=v.pk)  # idempotent: no double counts
    assert again["created"] == [] and again["calls"] == 8
    w.refresh_from_db()
    assert w.observed["calls"] == 5 and w.observed["argument_shapes"]["city"]["present"] == 4

    v2 = DatasetVersionFactory(dataset=v.dataset, examples=[
        ex({"role": "assistant", "content": None, "tool_calls": [call("get_weather", {"city": 7})]})])
    services.tool_scan(actor=None, dataset_version_id=v2.pk)
    w.refresh_from_db()
    assert w.observed["calls"] == 6 and w.observed["datasets"] == {str(v.pk): 5, str(v2.pk): 1}
    assert w.observed["argument_shapes"]["city"]["types"] == {"string": 4, "integer": 1}
    assert w.parameters["properties"]["city"]["type"] == ["integer", "string"]
    assert w.parameters["required"] == ["city"]


def test_scan_updates_only_observed_of_an_admin_tool(admin_user):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    services.tool_create(actor=admin_user, name="get_weather", parameters=schema, description="Weather.")
    services.tool_scan(actor=admin_user, dataset_version_id=weather_version(admin_user).pk)
    w = Tool.objects.get(name="get_weather")
    assert w.origin == "admin" and w.parameters == schema and w.description == "Weather."
    assert w.observed["calls"] == 5


def test_scan_is_for_admins_and_ready_versions(admin_user, member):
    v = weather_version(admin_user)
    with pytest.raises(PermissionDenied):
        services.tool_scan(actor=member, dataset_version_id=v.pk)
    with pytest.raises(ValidationFailed) as exc:
        services.tool_scan(actor=admin_user, dataset_version_id=v.pk + 1000)
    assert exc.value.errors[0]["field"] == "dataset_version_id"
    importing = DatasetVersionFactory(owner=admin_user, status="importing")
    with pytest.raises(ValidationFailed, match="importing"):
        services.tool_scan(actor=admin_user, dataset_version_id=importing.pk)
    assert not Tool.objects.exclude(origin="builtin").exists()


def test_scan_of_10k_examples_takes_a_few_seconds(admin_user):
    from apps.datasets.models import Example

    v = DatasetVersionFactory(owner=admin_user, examples=[ex({"role": "assistant", "content": "ok"})])
    rows = []
    for i in range(1, 10_000):
        if i % 3:
            m = {"role": "assistant", "content": None,
                 "tool_calls": [call("get_weather", {"city": f"c{i}", "days": i % 7})]}
        else:
            m = {"role": "assistant", "content": f"Attack {i}! [roll: d20+{i % 9}] then [health: orc, -{i % 5}]"}
        rows.append(Example(version=v, index=i, messages=[U, m], content_hash=f"h{i}"))
    Example.objects.bulk_create(rows, batch_size=2000)
    started = time.monotonic()
    result = services.tool_scan(actor=admin_user, dataset_version_id=v.pk)
    elapsed = time.monotonic() - started
    assert result["examples"] == 10_000 and result["calls"] == 6666 + 2 * 3333
    assert Tool.objects.get(name="health").observed["calls"] == 3333
    assert elapsed < 8, f"scan of 10k examples took {elapsed:.1f} s"


def test_definitions_are_admin_only_and_checked_field_by_field(admin_user, member):
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    with pytest.raises(PermissionDenied):
        services.tool_create(actor=member, name="search", parameters=schema)
    cases = [
        ({"name": "9lives", "parameters": schema}, "name"),
        ({"name": "has space", "parameters": schema}, "name"),
        ({"name": "search", "parameters": '{"type": "object",'}, "parameters"),
        ({"name": "search", "parameters": "[1, 2]"}, "parameters"),
        ({"name": "search", "parameters": {"type": "object", "properties": {"q": {"type": "text"}}}},
         "parameters.properties.q.type"),
        ({"name": "search", "parameters": {"type": "object", "properties": {}, "required": ["q"]}},
         "parameters.required"),
        ({"name": "search", "parameters": {"type": "object", "properties": {"q": {"minLength": "x"}}}},
         "parameters.properties.q.minLength"),
        ({"name": "search", "parameters": schema, "call_format": "xml"}, "call_format"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            services.tool_create(actor=admin_user, **kwargs)
        assert exc.value.errors[0]["field"] == field, (kwargs, exc.value.errors)
    assert not Tool.objects.filter(name="search").exists()  # nothing half-written
    bad_json = pytest.raises(ValidationFailed, match=r"Not valid JSON: .*line 1")
    with bad_json:
        services.tool_create(actor=admin_user, name="search", parameters='{"type": "object",')

    t = services.tool_create(actor=admin_user, name="search", parameters=json.dumps(schema), description="Find.")
    assert t.origin == "admin" and t.parameters == schema and t.updated_by == admin_user
    with pytest.raises(ValidationFailed, match="exists"):
        services.tool_create(actor=admin_user, name="search", parameters=schema)
    with pytest.raises(PermissionDenied):
        services.tool_update(actor=member, name="search", description="x")
    with pytest.raises(Conflict):
        services.tool_delete(actor=admin_user, name="roll")  # builtin
    edited = services.tool_update(actor=admin_user, name="roll", description="Roll some dice.")
    assert edited.origin == "admin" and edited.parameters == BUILTIN_TOOLS["roll"]["parameters"]
    services.tool_delete(actor=admin_user, name="roll")  # an admin's edit of a builtin: the builtin comes back
    assert selectors.tool_get("roll").origin == "builtin"
    services.tool_delete(actor=admin_user, name="search")
    assert not Tool.objects.filter(name="search").exists()


def test_docs_describe_every_tool_with_an_example_call_and_parameters(admin_user):
    services.tool_create(actor=admin_user, name="get_weather", description="Weather | forecast\n`for` a city",
                         parameters={"type": "object", "properties": {
                             "city": {"type": "string", "description": "City | name"},
                             "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]})
    services.tool_scan(actor=admin_user, dataset_version_id=weather_version(admin_user).pk)
    md = selectors.tool_docs_markdown()
    for t in Tool.objects.all():
        assert f"## `{t.name}`" in md
    assert "[roll: d20+5]" in md  # bracket example call from the builtin example
    assert '"name": "get_weather"' in md and "| city | string | yes | City \\| name |" in md
    assert '| unit | string | no | enum: ["c", "f"] |' in md
    assert "Seen 5 times in 1 dataset version" in md
    assert "<tool_call>" in md  # the Hermes tool's example call
    assert "Weather \\| forecast `for` a city" in md
    export = selectors.tool_registry_export()
    assert {t["name"] for t in export["tools"]} == set(Tool.objects.values_list("name", flat=True))
    assert set(export["call_formats"]) == {"bracket", "openai", "hermes"}
    assert set(export["tools"][0]) == {"name", "description", "parameters", "call_format", "example_call"}


def test_tool_call_problems_flags_unknown_tools_and_schema_violations():
    assert selectors.tool_call_problems("roll", {"dice": "2d6"}) == []
    assert selectors.tool_call_problems("teleport", {}) == ["`teleport` is not in the tool registry"]
    problems = selectors.tool_call_problems("health", '{"target": "orc", "amount": "lots"}')
    assert len(problems) == 1 and "amount" in problems[0] and "lots" in problems[0]
    assert "not valid JSON" in selectors.tool_call_problems("roll", "{oops")[0]
    assert selectors.tool_registry_schemas()["roll"] == BUILTIN_TOOLS["roll"]["parameters"]


def test_builtin_subset_validator_where_no_library_is_installed(monkeypatch):
    from apps.registry.tools import validate

    monkeypatch.setattr(validate, "jsonschema", None)
    monkeypatch.setattr(validate, "jsonschema_rs", None)
    schema = BUILTIN_TOOLS["spellcast"]["parameters"]
    assert validate.argument_problems(schema, {"caster": "Mira", "spell": "light", "level": 0}) == []
    problems = validate.argument_problems(schema, {"caster": 3, "spell": "x", "level": 12, "extra": 1})
    assert any("caster" in p and "type" in p for p in problems)
    assert any("12" in p and "maximum" in p for p in problems)
    assert any("extra" in p for p in problems)
    assert validate.argument_problems(schema, {"caster": "a", "spell": "b", "level": "x"})[0].startswith("level:")
    assert any('"spell" is a required' in p for p in validate.argument_problems(schema, {"caster": "a", "level": 1}))
    assert validate.schema_problems({"type": "object", "properties": {"a": {"pattern": "(["}}})[0][0] == \
        "parameters.properties.a.pattern"


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_validation_warns_about_unregistered_tools_and_schema_violations_with_lines(tmp_path, monkeypatch):
    from apps.datasets.validation import validate_path

    reads = []
    real = selectors.tool_registry_schemas
    monkeypatch.setattr(selectors, "tool_registry_schemas", lambda: reads.append(1) or real())
    rows = [{"messages": [U, {"role": "assistant", "content": f"Answer number {i} is fine and long."}]}
            for i in range(12)]
    rows[2] = ex({"role": "assistant", "content": None, "tool_calls": [call("teleport", {"to": "moon"})]})
    rows[5] = ex({"role": "assistant", "content": None, "tool_calls": [call("health", {"target": "orc", "amount": 4.5})]})
    rows[7] = ex({"role": "assistant", "content": None, "tool_calls": [call("roll", {"dice": "2d6"})]})
    rows[9] = {**ex({"role": "assistant", "content": None, "tool_calls": [call("own_tool", {"x": 1})]}),
               "tools": [{"type": "function", "function": {"name": "own_tool", "parameters": {
                   "type": "object", "properties": {"x": {"type": "string"}}}}}]}
    result = validate_path(_jsonl(tmp_path / "d.jsonl", rows)).as_dict()
    found = {(w["code"], w["line"]) for w in result["warnings"] if w["code"] in ("unregistered_tool",
                                                                                  "tool_schema_violation")}
    assert found == {("unregistered_tool", 3), ("tool_schema_violation", 6), ("tool_schema_violation", 10)}
    msg = next(w["message"] for w in result["warnings"] if w["line"] == 6 and w["code"] == "tool_schema_violation")
    assert "messages[1].tool_calls[0]" in msg and "health" in msg and "4.5" in msg
    assert not result["errors"] and len(reads) == 1  # the registry is read once per validation


def test_validation_without_a_database_uses_the_builtin_tools(monkeypatch):
    from apps.datasets.formats.base import Report
    from apps.datasets.validation import toolcheck

    def no_db():
        raise RuntimeError("no database")

    monkeypatch.setattr(selectors, "tool_registry_schemas", no_db)
    check, rep = toolcheck.ToolCallCheck(), Report()
    codes = check.check(ex({"role": "assistant", "content": None, "tool_calls": [
        call("roll", {"dice": "lots"}), call("teleport", {}, "c2")]}), rep, index=0)
    assert codes == {"tool_schema_violation"}  # unknown names are not reported without the registry
    assert [w["code"] for w in rep.warnings] == ["tool_schema_violation"]


def test_tool_call_accuracy_uses_the_registry_schema_where_the_request_gave_none():
    from apps.experiments.toolcalls import tool_call_counts

    registry = selectors.tool_registry_schemas()
    no_schema = {"tools": [{"type": "function", "function": {"name": "roll"}}]}
    answer = {"choices": [{"message": {"tool_calls": [
        {"function": {"name": "roll", "arguments": '{"dice": 20}'}},
        {"function": {"name": "roll", "arguments": '{"dice": "d20"}'}}]}}]}
    assert tool_call_counts(no_schema, answer) == (2, 2)  # without a schema, any object passes
    assert tool_call_counts(no_schema, answer, registry) == (2, 1)  # `dice` must be a string
    own = {"tools": [{"type": "function", "function": {"name": "roll", "parameters": {
        "type": "object", "properties": {"dice": {"type": "integer"}}}}}]}
    assert tool_call_counts(own, answer, registry) == (2, 1)  # the request's own schema wins
    assert tool_call_counts({}, answer) == (0, 0)
    assert tool_call_counts({}, answer, registry) == (2, 1)  # no tools offered: the registry's


def test_bracket_calls_are_named_by_the_tools_parameters():
    from apps.registry.tools.scan import calls_in_messages

    params = {"roll": ["dice"], "health": ["target", "amount"], "lookup_rule": ["args"]}
    msgs = [{"role": "assistant", "content": "[Roll: 2d6] [health: orc] [lookup_rule: grapple] [Note: prose] "
                                             "[new_tool: a, b]"}]
    assert calls_in_messages(msgs, params) == [
        ("roll", {"dice": "2d6"}, "bracket"),
        ("health", {"args": ["orc"]}, "bracket"),  # wrong number of values: kept as a list
        ("lookup_rule", {"args": ["grapple"]}, "bracket"),  # an inferred `args` list stays a list
        ("new_tool", {"args": ["a", "b"]}, "bracket"),
    ]
