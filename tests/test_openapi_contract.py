"""The OpenAPI contract of /api, checked by Schemathesis inside the suite.

Schemathesis loads /api/openapi.json from the app itself (Django's WSGI handler, in-process, on the test
database) and, for every operation, sends generated requests — valid ones and ones that break the schema —
with an admin's API key. Each answer must:
- not be a 5xx (`not_a_server_error`);
- have a status the operation documents (`status_code_conformance`);
- match the documented body for that status (`response_schema_conformance`).

Nothing long runs: the broker is the stub broker of the test settings and the test database's transaction is
never committed, so actors queued "after commit" are never sent; a run created here stays queued. The number
of generated cases per operation is bounded (MAX_EXAMPLES) so the whole test takes well under a minute.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

from tests.test_url_fuzz import build_world  # noqa: E402

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 12
SLOW_COVERAGE = (r"^/api/(runs|pipelines|runs/estimate|runs/\{run_id\}/relaunch"
                 r"|datasets/versions/\{version_id\}/(fixes|examples/\{index\}))$")
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def world(db):
    return build_world()


def _load_schema():
    """The schema as the running app serves it, bound to the app (requests go to Django's WSGI handler).
    Loaded at import so that each operation is its own test; serving it touches no database."""
    from django.core.handlers.wsgi import WSGIHandler

    config = schemathesis.Config.from_dict({"operations": [{
        # The run bodies have some sixty documented properties: their coverage phase (every boundary of
        # every property) alone sends ~800 requests per operation; each accepted fix or edit derives a new
        # dataset version (~0.3 s). These get MAX_EXAMPLES generated cases instead.
        "include-path-regex": SLOW_COVERAGE, "phases": {"coverage": {"enabled": False}},
    }]})
    return schemathesis.openapi.from_wsgi("/api/openapi.json", WSGIHandler(), config=config)


schema = _load_schema()


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: a request must not close the test's connection (and its transaction)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case, world):
    case.call_and_validate(headers={"Authorization": f"Bearer {world.admin_key}"}, checks=CHECKS)


def test_the_schema_documents_errors_and_enums(client):
    """Spot checks that the schema states the rules: error statuses with the Error body, enums, bounds, slugs."""
    doc = client.get("/api/openapi.json").json()
    paths = doc["paths"]
    detail = paths["/api/runs/{run_id}"]["get"]
    assert {"401", "404", "422"} <= set(detail["responses"])
    error_ref = detail["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/Error")
    assert set(doc["components"]["schemas"]["Error"]["required"]) == {"detail", "code"}
    run_id = next(p for p in detail["parameters"] if p["name"] == "run_id")["schema"]
    assert run_id["minimum"] == 1 and run_id["maximum"] == 2**63 - 1
    run_in = doc["components"]["schemas"]["RunIn"]["properties"]
    assert run_in["method"]["enum"] == ["lora", "full", "scratch", "dpo", "kto", "grpo", "grow"]
    assert run_in["backend"]["enum"] == ["local", "together"]
    deploy = doc["components"]["schemas"]["DeployIn"]["properties"]["alias"]
    assert deploy["pattern"].startswith("^[a-z0-9]")
    cancel = paths["/api/runs/{run_id}/cancel"]["post"]["responses"]
    assert {"403", "404", "409"} <= set(cancel)
    fix = doc["components"]["schemas"]["FixIn"]["properties"]["fix"]
    assert "merge_consecutive_turns" in fix["enum"]


def test_ninja_and_application_422_bodies_have_one_shape(client, world):
    """A 422 from ninja's validation and one raised by a service carry the same keys."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.admin_key}"}
    from_ninja = client.get("/api/runs/0", **auth)
    from_service = client.post("/api/runs", {"dataset_version_id": 999999}, content_type="application/json", **auth)
    assert from_ninja.status_code == from_service.status_code == 422
    for body in (from_ninja.json(), from_service.json()):
        assert body["code"] == "invalid" and body["detail"] and body["errors"][0]["field"]
    assert from_ninja.json()["errors"][0]["field"] == "run_id"


def test_a_body_that_is_not_json_is_a_documented_400(client, world):
    response = client.post("/api/api-keys", "{not json", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {world.admin_key}")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
