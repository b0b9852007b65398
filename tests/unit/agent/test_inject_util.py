"""``hpresil inject gpu --util``: the lab sets a simulated GPU's utilisation, which the
agent maps to the jobs holding that GPU."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hpresil.adapters.gpu.simulated import SimulatedBackend
from hpresil.cli.main import cli


def test_inject_gpu_util_sets_the_simulated_utilisation(tmp_path: Path) -> None:
    state = tmp_path / "sim" / "{node}.json"
    config = tmp_path / "hpresil.toml"
    config.write_text(f'[agent.gpu]\nbackend = "simulated"\nstate_file = "{state}"\n')

    done = CliRunner().invoke(
        cli,
        ["--config", str(config), "inject", "gpu", "--gpu", "5", "--node", "node3", "--util", "85"],
    )

    assert done.exit_code == 0, done.output
    assert "utilization_pct=85" in done.output
    utils = {
        g.identity.index: g.utilization_pct for g in SimulatedBackend(state, "node3").devices()
    }
    assert utils[5] == 85 and utils[4] == 0


def test_util_is_a_percentage(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    argv = ["--config", str(tmp_path / "empty.toml"), "inject", "gpu", "--gpu", "0"]
    done = CliRunner().invoke(cli, [*argv, "--util", "101"])
    assert done.exit_code == 2 and "101" in done.output
