"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis over
hypothesis), against the real app on SQLite: valid and invalid requests to every route.

Each answer must not be a 5xx, must match the document (status code, content type,
body schema), and a refused request (4xx) must change nothing in the database.
Bounded: a few dozen examples per route, no deadline, no example database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from hpresil.store import Store
from hpresil.store.models import Base
from tests.unit.controller.fakes import TOKEN

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the fuzzing is about the edge, not the database engine."""
    return f"sqlite:///{tmp_path}/state/hpresil.db"


DOCUMENT = Path(__file__).parents[3] / "docs" / "openapi.json"  # == served (test_openapi)
OPERATIONS = [
    f"{method.upper()} {path}"
    for path, methods in json.loads(DOCUMENT.read_text())["paths"].items()
    for method in methods
]


def tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for comparing before and after a request."""
    with store.read() as s:
        return {
            t.name: sorted((tuple(r) for r in s.execute(select(t))), key=repr)
            for t in Base.metadata.sorted_tables
        }


def cases(client: TestClient, label: str) -> st.SearchStrategy[Any]:
    """Valid and invalid requests to one operation, sent to the app in ``client``."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    (operation,) = [r.ok() for r in schema.get_all_operations() if r.ok().label == label]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    return st.one_of(*(operation.as_strategy(generation_mode=m) for m in modes))


@pytest.mark.parametrize("label", OPERATIONS)
def test_the_api_answers_every_request_by_its_document(
    label: str, client: TestClient, store: Store
) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(client, label))
    def one(case: Any) -> None:
        before = tables(store)
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            assert tables(store) == before, f"{label} -> {response.status_code}"

    one()
