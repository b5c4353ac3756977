"""The SDK's TypedDicts (hub_sdk.types) against the OpenAPI schema the app serves: for each mapped component,
the same keys, and the same of them required. A field added, renamed or made optional in /api fails here, so the
SDK is changed with the API rather than after a user's script breaks."""
from __future__ import annotations

import pytest

from hub_sdk.types import COMPONENTS

# components of work that a hub may not have yet: their absence is a skip, not a failure
OPTIONAL = {"EvaluationOut": "/api/evaluations", "JobState": "/api/evaluations", "VersionRef": "/api/evaluations",
            "CommandOut": "/api/commands/parse", "ApiCallOut": "/api/commands/parse"}


@pytest.fixture(scope="module")
def components():
    from training_hub.api import api

    return api.get_openapi_schema()["components"]["schemas"]


@pytest.mark.parametrize("typed,name", sorted(COMPONENTS.items(), key=lambda kv: kv[1]),
                         ids=[n for _, n in sorted(COMPONENTS.items(), key=lambda kv: kv[1])])
def test_typed_dict_matches_its_component(typed, name, components):
    if name not in components:
        if name in OPTIONAL:
            pytest.skip(f"this hub has no {OPTIONAL[name]} ({name} is not in its schema)")
        pytest.fail(f"{name} is not a component of /api/openapi.json any more")
    schema = components[name]
    assert set(typed.__annotations__) == set(schema.get("properties", {})), name
    assert set(typed.__required_keys__) == set(schema.get("required", [])), name
