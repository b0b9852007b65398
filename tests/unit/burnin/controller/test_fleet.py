"""GET /v1/burnin/median: fleet medians over each node's latest burn-in results."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.controller.fleet import burnin_median
from hpresil.vocab import CheckResult, GpuIdentity, Report, Status
from tests.unit.controller.fakes import T0

H100 = "NVIDIA H100 80GB HBM3"
_ids = iter(range(1, 1_000_000))


def matmul(
    index: int, tflops: float, *, name: str = H100, size: int = 8192, **kw: Any
) -> CheckResult:
    return CheckResult(
        check="burnin_matmul",
        status=kw.pop("status", Status.OK),
        gpu=GpuIdentity(index=index, name=name),
        evidence={"tflops": tflops, "dtype": kw.pop("dtype", "bf16"), "size": size},
        observed_at=kw.pop("at", T0),
    )


def membw(index: int, gbps: float, *, name: str = H100) -> CheckResult:
    return CheckResult(
        check="burnin_membw",
        status=Status.OK,
        gpu=GpuIdentity(index=index, name=name),
        evidence={"membw_gbps": gbps, "bytes": 1 << 30},
        observed_at=T0,
    )


def post(client: TestClient, node: str, *results: CheckResult) -> None:
    rep = Report(
        report_id=f"burnin-{node}-{next(_ids):06d}",
        node=node,
        seq=0,
        sent_at=T0,
        results=results,
    )
    assert client.post("/v1/reports", json=rep.model_dump(mode="json")).status_code == 200


def median(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/burnin/median", params={"model": H100, **params})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_medians_over_every_gpu_of_the_model(client: TestClient) -> None:
    post(client, "node1", matmul(0, 780.0), matmul(1, 790.0), membw(0, 2900.0))
    post(client, "node2", matmul(0, 600.0, status=Status.FAIL), matmul(1, 800.0))
    post(client, "node3", matmul(0, 500.0, name="NVIDIA A100-SXM4-80GB"))
    assert median(client) == {
        "model": H100,
        "dtype": None,
        "size": None,
        "metrics": {
            "tflops": {"median": 785.0, "samples": 4, "nodes": 2},
            "membw_gbps": {"median": 2900.0, "samples": 1, "nodes": 1},
        },
    }


def test_only_each_nodes_latest_result_counts(client: TestClient) -> None:
    post(client, "node1", matmul(0, 100.0), matmul(1, 100.0))
    post(client, "node1", matmul(0, 700.0), matmul(1, 100.0))  # the later report counts
    post(client, "node2", matmul(0, 800.0))
    assert median(client)["metrics"]["tflops"] == {"median": 700.0, "samples": 3, "nodes": 2}


def test_gemm_figures_narrowed_to_the_callers_dtype_and_size(client: TestClient) -> None:
    post(client, "node1", matmul(0, 780.0), matmul(1, 200.0, size=1024), membw(0, 2900.0))
    post(client, "node2", matmul(0, 60.0, dtype="fp32"))
    found = median(client, dtype="bf16", size=8192)
    assert (found["dtype"], found["size"]) == ("bf16", 8192)
    assert found["metrics"]["tflops"] == {"median": 780.0, "samples": 1, "nodes": 1}
    assert found["metrics"]["membw_gbps"]["samples"] == 1  # copies have no dtype or size


def test_a_model_nobody_has_yet_has_no_metrics(client: TestClient) -> None:
    post(client, "node1", matmul(0, 780.0))
    assert median(client, model="NVIDIA B200")["metrics"] == {}


def test_the_model_is_required_and_the_dtype_checked(client: TestClient) -> None:
    missing = client.get("/v1/burnin/median")
    assert missing.status_code == 422 and missing.json() == {
        "detail": "query.model: Field required"
    }
    bad = client.get("/v1/burnin/median", params={"model": H100, "dtype": "fp8"})
    assert bad.status_code == 422


def test_it_needs_the_token(client: TestClient) -> None:
    answer = client.get("/v1/burnin/median", params={"model": H100}, headers={"Authorization": ""})
    assert answer.status_code == 401


@pytest.mark.parametrize("value", [None, "780", True, 0, -5.0, float("nan")])
def test_figures_that_are_not_positive_numbers_are_ignored(value: Any) -> None:
    stored = matmul(0, 1.0).model_dump(mode="json")
    stored["evidence"]["tflops"] = value
    assert burnin_median([("node1", [stored])], H100).metrics == {}
