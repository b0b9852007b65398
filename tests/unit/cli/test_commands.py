"""The shape of the command tree: help text everywhere, ``--json`` on every read command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hpresil.cli.main import cli

READ_COMMANDS = [("status",), ("incidents",), ("stats", "mttf")]


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of ``cmd`` and of every command below it."""
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from walk(sub, (*path, name))


def find(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        found = cmd.commands.get(name)
        assert found is not None, f"no command {' '.join(path)}"
        cmd = found
    return cmd


ALL = sorted(walk(cli))


def test_the_walk_sees_every_command_group_and_subcommand() -> None:
    names = {" ".join(p) for p in ALL}
    expected = {"", "status", "drain", "resume", "incidents", "stats", "stats mttf"}
    assert expected | {"inject", "inject xid", "agent", "controller", "token"} <= (names)


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "hpresil")
def test_every_command_has_help_text(
    path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = find(path)
    assert (cmd.help or "").strip(), f"`hpresil {' '.join(path)}` has no help text"
    # and it is what --help shows (the root callback reads a config: give it an empty one)
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("HPRESIL_CONFIG", str(tmp_path / "empty.toml"))
    shown = CliRunner().invoke(cli, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert cmd.get_short_help_str(limit=40).rstrip(".") in " ".join(shown.output.split())


@pytest.mark.parametrize("path", READ_COMMANDS, ids=" ".join)
def test_every_read_command_offers_json(path: tuple[str, ...]) -> None:
    flags = [p for p in find(path).params if "--json" in getattr(p, "opts", ())]
    assert len(flags) == 1, f"`hpresil {' '.join(path)}` has no --json"
    (flag,) = flags
    assert isinstance(flag, click.Option) and flag.is_flag and flag.name == "as_json"
