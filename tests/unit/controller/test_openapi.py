"""The API's OpenAPI document is published in docs/ and must match what is served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hpresil.cli.main import main

DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_served_document_matches_the_published_one(client: TestClient) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(DOC.read_text()), (
        "the API changed: run `hpresil openapi > docs/openapi.json` and review the diff"
    )


def test_every_v1_route_requires_the_token(client: TestClient) -> None:
    doc = json.loads(DOC.read_text())
    for path, ops in doc["paths"].items():
        for op in ops.values():
            secured = bool(op.get("security"))
            assert secured is path.startswith("/v1/"), path


def test_cli_prints_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "hpresil.toml"
    empty.write_text("")
    assert main(["--config", str(empty), "openapi"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(DOC.read_text())
