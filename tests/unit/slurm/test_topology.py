"""Slurm's switches, read from ``scontrol show topology`` (recorded from the lab's
slurmctld) and from a topology.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpresil.adapters.slurm.topology import Switch, from_file, from_scontrol, parse
from hpresil.errors import SlurmError, SlurmParseError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "slurm"


def by_name(switches: list[Switch]) -> dict[str, set[str]]:
    return {s.name: set(s.nodes) for s in switches}


def test_scontrol_show_topology_as_recorded() -> None:
    text = (FIXTURES / "scontrol-show-topology-22.05.txt").read_text()
    assert by_name(parse(text)) == {
        "leaf1": {"node1", "node2"},
        "leaf2": {"node3", "node4"},
        "spine": {"node1", "node2", "node3", "node4"},
    }


def test_topology_conf_gives_an_upper_switch_the_nodes_below_it() -> None:
    # the lab's file names no node on the spine: they come from its leaves
    assert by_name(from_file(FIXTURES / "topology.conf")) == by_name(
        parse((FIXTURES / "scontrol-show-topology-22.05.txt").read_text())
    )


def test_comments_continuations_and_other_lines() -> None:
    text = (
        "# racks 1 and 2\n"
        "SwitchName=s0 Nodes=gpu[001-002]  # the first leaf\n"
        "switchname=s1 \\\n"
        "  nodes=gpu003,gpu004\n"
        "SwitchName=s2 Switches=s[0-1] LinkSpeed=100\n"
        "No topology information available\n"
    )
    assert by_name(parse(text)) == {
        "s0": {"gpu001", "gpu002"},
        "s1": {"gpu003", "gpu004"},
        "s2": {"gpu001", "gpu002", "gpu003", "gpu004"},
    }


def test_without_the_topology_plugin_there_are_no_switches() -> None:
    assert parse("No topology information available\n") == []


def test_a_switch_below_itself_is_refused() -> None:
    with pytest.raises(SlurmParseError, match="below itself"):
        parse("SwitchName=a Switches=b\nSwitchName=b Switches=a\n")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SlurmParseError, match=r"topology .*missing\.conf: No such file"):
        from_file(tmp_path / "missing.conf")


def test_scontrol_is_asked_with_the_configured_slurm_conf(tmp_path: Path) -> None:
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(
        '#!/bin/sh\n[ "$1 $2" = "show topology" ] || exit 3\n'
        'echo "SwitchName=leaf9 Level=0 LinkSpeed=1 Nodes=$SLURM_CONF"\n'
    )
    scontrol.chmod(0o755)
    (found,) = from_scontrol(tmp_path, Path("/etc/site/slurm.conf"), timeout=5)
    assert found == Switch("leaf9", frozenset({"/etc/site/slurm.conf"}))


def test_scontrol_failing_is_a_slurm_error(tmp_path: Path) -> None:
    scontrol = tmp_path / "scontrol"
    scontrol.write_text("#!/bin/sh\necho 'Unable to contact slurm controller' >&2\nexit 1\n")
    scontrol.chmod(0o755)
    with pytest.raises(SlurmError, match="Unable to contact"):
        from_scontrol(tmp_path, None, timeout=5)
