"""``dcgmi health -c -j`` parsing."""

from __future__ import annotations

import json

import pytest

from hpresil.dcgm.health import parse_health
from hpresil.dcgm.parse import DcgmParseError
from hpresil.vocab import Action, Category, Status
from tests.unit.dcgm.fakes import fixture


def test_healthy_sample() -> None:
    report = parse_health(fixture("health_vc_healthy.json"))
    assert (report.overall, report.incidents, report.failing_gpus) == ("healthy", (), [])


def test_incidents_per_gpu_and_system_with_messages_joined() -> None:
    report = parse_health(fixture("health_failure.json"))
    assert report.overall == "failure"
    got = [(i.gpu, i.system, i.health, i.status, i.action, i.category) for i in report.incidents]
    assert got == [
        (0, "PCIe system", "Warning", Status.WARN, Action.WATCH, Category.PCIE_LINK),
        (1, "Memory system", "Failure", Status.FAIL, Action.DRAIN_NOW, Category.HBM_ECC),
        (1, "NVLINK system", "Warning", Status.WARN, Action.WATCH, Category.NVLINK_NVSWITCH),
    ]
    assert report.incidents[0].message == (
        "Detected more than 8 PCIe replays per minute for GPU 0 : 12"
    )
    assert report.failing_gpus == [1]


def _body(**groups: object) -> str:
    return json.dumps({"body": {"Overall Health": {"value": "Failure"}, **groups}, "header": []})


def test_other_entity_groups_are_not_gpus() -> None:
    system = {
        "value": "Failure",
        "overflow": ["ConnectX entity Id:0 uncorrectable fatal errors: 0x1010"],
    }
    entity = {"value": "Failure", "children": {"Errors": {"children": {"ConnectX": system}}}}
    report = parse_health(_body(ConnectX={"children": {"0": entity}}))
    (i,) = report.incidents
    assert (i.entity_group, i.entity_id, i.gpu) == ("ConnectX", "0", None)
    assert (i.status, i.category) == (Status.FAIL, Category.IB_NETWORK)
    assert report.failing_gpus == []


def test_internal_error_is_unknown_not_a_fault() -> None:
    system = {"value": "Internal error", "overflow": ["?"]}
    entity = {
        "value": "Internal error",
        "children": {"Errors": {"children": {"SM system": system}}},
    }
    (i,) = parse_health(_body(GPU={"children": {"2": entity}})).incidents
    assert (i.gpu, i.status, i.action) == (2, Status.UNKNOWN, Action.NONE)


@pytest.mark.parametrize("text", ["", "Error: Health watches not enabled.", '{"body": {}}'])
def test_not_a_health_report(text: str) -> None:
    with pytest.raises(DcgmParseError, match="no DCGM health report"):
        parse_health(text)
