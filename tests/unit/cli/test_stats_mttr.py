"""``hpresil stats mttr`` against a real controller, over the ledger of
tests/unit/controller/test_mttr.py written into its store."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from hpresil.cli.main import cli, main
from hpresil.store import Store
from tests.unit.cli.test_live import Capture, run, run_json
from tests.unit.controller.test_mttr import write


@pytest.fixture
def ledger(store: Store, controller: str) -> None:
    write(store)


@pytest.mark.usefixtures("ledger")
def test_json_is_the_view(config: Path, capsys: Capture) -> None:
    view = run_json(config, capsys, "stats", "mttr")
    assert view["since"] == "2026-10-23T08:00:00Z"  # the controller's 30 days
    assert view["total"]["incidents"] == 5 and view["total"]["back"] == 2
    assert [c["incidents"] for c in view["cleared_by"]] == [0, 2, 0]
    # from the person's clock: ten years back holds the incident of 40 days before
    wide = run_json(config, capsys, "stats", "mttr", "--since", "3650")
    assert wide["total"]["incidents"] == 6
    assert [c["incidents"] for c in wide["cleared_by"]] == [1, 2, 0]


def rows(out: str, title: str) -> dict[str, list[str]]:
    """The rows of the table under ``title``, by their first cell."""
    lines = out[out.index(title) :].splitlines()[1:]
    found: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("└"):
            return found
        if line.startswith("│"):
            first, *cells = (c.strip() for c in line.strip("│").split("│"))
            found[first] = cells
    raise AssertionError(f"no end to the table {title!r}")


@pytest.mark.usefixtures("ledger")
def test_tables_per_rung_per_category_and_cleared_by(
    config: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = run(config, capsys, "stats", "mttr")
    rungs = rows(out, "Recovery steps of the incidents detected since 2026-10-23 08:00:00")
    assert list(rungs) == ["reset_gpu", "reboot", "burnin", "resume", "replace"]
    assert rungs["reboot"] == ["5", "3", "0", "1", "1", "10m", "42m", "20m"]
    assert rungs["resume"] == ["2", "2", "0", "0", "0", "90s", "117s", "90s"]
    categories = rows(out, "MTTR by category")
    assert list(categories) == ["gpu_fw_gsp", "gpu_hang", "hbm_ecc", "pcie_link", "all"]
    assert categories["gpu_hang"] == ["2", "1", "45m", "45m", "45m", "1", "90m", "0", "0"]
    assert categories["all"] == ["5", "2", "39m", "44m", "39m", "1", "90m", "1", "1"]
    cleared = rows(out, "Back in service, cleared by")
    assert cleared == {
        "reset_gpu": ["0", "-", "-", "-"],
        "reboot": ["2", "39m", "44m", "39m"],
        "burn-in only": ["0", "-", "-", "-"],
    }


def test_since_must_be_a_positive_number_of_days(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "stats", "mttr", "--since", "0"]) == 2
    assert "--since" in capsys.readouterr().err


def test_mttr_is_a_read_command_with_json() -> None:
    stats = cli.commands["stats"]
    assert isinstance(stats, click.Group)
    command = stats.commands["mttr"]
    assert [p.name for p in command.params if "--json" in getattr(p, "opts", ())] == ["as_json"]
