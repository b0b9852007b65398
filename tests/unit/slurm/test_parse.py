"""Slurm JSON parsing on recorded 22.05 output and the newer (24.11) shapes."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.adapters.slurm import parse
from hpresil.adapters.slurm.cli import CliBackend
from hpresil.adapters.slurm.hostlist import expand
from hpresil.errors import SlurmParseError

FIX = Path(__file__).parents[2] / "fixtures" / "slurm"


def _load(name: str) -> dict:
    return parse.load((FIX / name).read_text(), name)


def test_nodes_22_05_states_flags_and_reason() -> None:
    nodes = {n.name: n for n in parse.nodes(_load("sinfo-22.05.json"))}
    assert sorted(nodes) == ["node1", "node2", "node3", "node4"]
    assert nodes["node1"].drained and nodes["node1"].state_text == "IDLE+DRAIN"
    assert nodes["node1"].reason == "hpresil: #1 gpu_lost_pcie xid 79 gpu 3"
    assert nodes["node1"].reason_set_by == "root"
    assert nodes["node3"].reason == "admin: fan"
    assert not nodes["node2"].drained and nodes["node2"].state_text == "MIXED"
    assert nodes["node4"].reason is None


def test_nodes_24_11_grouped_shape_dedupes_partitions() -> None:
    nodes = parse.nodes(_load("sinfo-24.11.json"))
    assert [n.name for n in nodes] == ["gpu-a001", "gpu-a002", "gpu-a003"]
    first = nodes[0]
    assert first.state_text == "MIXED+DRAIN"
    assert first.reason == "hpresil: #7 gpu_lost_pcie xid 79 gpu 3"
    assert first.reason_set_by == "root"
    assert first.reason_time == datetime.fromtimestamp(1795321863, tz=UTC)
    assert nodes[2].reason is None and nodes[2].reason_time is None


def test_jobs_22_05() -> None:
    jobs = {j.job_id: j for j in parse.jobs(_load("squeue-22.05.json"))}
    assert jobs[1].running and jobs[1].requeue and jobs[1].nodes == ("node2",)
    assert jobs[2].requeue is False
    assert jobs[1].submit_time.tzinfo is UTC
    assert jobs[1].reason == ""  # 22.05 prints the string "None"


def test_jobs_after_requeue_count_restarts() -> None:
    job = next(j for j in parse.jobs(_load("squeue-22.05-requeued.json")) if j.job_id == 1)
    assert job.restart_count == 1 and not job.running


def test_jobs_24_11_lists_and_time_objects() -> None:
    jobs = parse.jobs(_load("squeue-24.11.json"))
    running, pending = jobs
    assert running.state == "RUNNING" and running.restart_count == 2
    assert running.nodes == ("gpu-a001", "gpu-a003", "gpu-a004")
    assert running.start_time == datetime.fromtimestamp(1795320100, tz=UTC)
    assert pending.start_time is None and pending.nodes == ()
    assert pending.reason == "Priority"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"errors": [{"error": "boom"}], "nodes": []}', "boom"),
        ('{"meta": {}}', "neither"),
    ],
)
def test_bad_output_is_a_typed_error(text: str, why: str) -> None:
    with pytest.raises(SlurmParseError, match=why):
        parse.nodes(parse.load(text, "sinfo"))


def test_job_record_missing_fields_is_a_typed_error() -> None:
    with pytest.raises(SlurmParseError, match="squeue"):
        parse.jobs({"jobs": [{"job_id": 3}]})


@pytest.mark.parametrize(
    ("hostlist", "names"),
    [
        ("node1", ["node1"]),
        ("node[1-3,7]", ["node1", "node2", "node3", "node7"]),
        ("gpu-a[001-002],login", ["gpu-a001", "gpu-a002", "login"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("", []),
    ],
)
def test_hostlist_expand(hostlist: str, names: list[str]) -> None:
    assert expand(hostlist) == names


def test_one_node_from_scontrol_show_node_22_05() -> None:
    """``scontrol show node -o`` as the lab's 22.05 printed it: a drain reads its node
    alone, not the whole listing."""
    text = (FIX / "scontrol-show-node-22.05.txt").read_text()
    node1 = parse.node_line(text, "node1")
    assert node1 is not None and node1.drained and node1.state_text == "IDLE+DRAIN"
    assert node1.reason == "hpresil: #1 gpu_lost_pcie xid 79 gpu 3"
    assert node1.reason_set_by == "root"
    local = datetime.fromisoformat("2026-11-22T04:31:03").astimezone(UTC)
    assert node1.reason_time == local
    node3 = parse.node_line(text, "node3")
    assert node3 is not None and node3.reason == "admin: fan"
    node2 = parse.node_line(text, "node2")
    assert node2 is not None and node2.state_text == "MIXED" and node2.reason is None
    assert parse.node_line(text, "node9") is None


def test_the_cli_reads_one_node_and_knows_when_there_is_none(tmp_path: Path) -> None:
    fixture = FIX / "scontrol-show-node-22.05.txt"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(  # the node asked for, or scontrol's own answer for none
        f'#!/bin/sh\ngrep "^NodeName=$4 " {fixture} && exit 0\necho "Node $4 not found"; exit 1\n'
    )
    scontrol.chmod(0o755)
    cli = CliBackend(bin_dir=tmp_path, timeout=10)
    node = cli.node("node3")
    assert node is not None and node.drained and node.reason == "admin: fan"
    assert cli.node("node9") is None


def test_a_reboot_through_slurm_as_scontrol_shows_it_22_05() -> None:
    """Recorded on the lab: drained, then ``reboot ASAP nextstate=DOWN`` requested,
    issued, complete (a new boot time, DOWN without the drain, the reason kept)."""
    lines = (FIX / "scontrol-show-node-reboot-22.05.txt").read_text().splitlines()
    seen = [parse.node_line(line, "node4") for line in lines]
    assert all(n is not None for n in seen)
    drained, requested, issued, complete = (n for n in seen if n is not None)
    assert [n.state_text for n in (drained, requested, issued, complete)] == [
        "IDLE+DRAIN",
        "IDLE+DRAIN+REBOOT_REQUESTED",
        "DOWN+DRAIN+REBOOT_ISSUED",
        "DOWN",
    ]
    assert [n.rebooting for n in (drained, requested, issued, complete)] == [
        False,
        True,
        True,
        False,
    ]
    assert drained.boot_time == issued.boot_time and complete.boot_time is not None
    assert drained.boot_time is not None and complete.boot_time > drained.boot_time
    assert complete.reason is not None and complete.reason.startswith("hpresil: #3")
    assert complete.reason.endswith(" : reboot issued : reboot complete")


def test_the_cli_asks_for_a_reboot_that_keeps_the_node_out(tmp_path: Path) -> None:
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    scontrol.chmod(0o755)
    CliBackend(bin_dir=tmp_path, timeout=10).reboot("node4", "hpresil: #3 gpu_lost_pcie")
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == ["reboot", "ASAP", "nextstate=DOWN", "reason=hpresil: #3 gpu_lost_pcie", "node4"]
