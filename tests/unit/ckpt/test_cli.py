"""``hpresil checkpoint latest|list`` through the root command and its error boundary."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from hpresil.cli.checkpoint import COMMANDS, checkpoint
from hpresil.cli.main import main


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("HPRESIL_CONFIG", str(tmp_path / "empty.toml"))  # the root reads one
    monkeypatch.setenv("COLUMNS", "300")  # rich tables: one line per row


@pytest.fixture
def ckpts(tmp_path: Path, layouts: ModuleType) -> Path:
    """checkpoint-100 whole, checkpoint-200 cut off before trainer_state.json."""
    root = tmp_path / "run"
    layouts.write("hf", root, 100)
    layouts.write("hf", root, 200, stop_after=7)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_group_is_exported_for_the_root_command() -> None:
    assert [checkpoint] == COMMANDS and set(checkpoint.commands) == {"latest", "list"}


def test_latest_prints_path_step_format(ckpts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "checkpoint", "latest", str(ckpts))
    assert (code, err) == (0, "")
    assert out == f"{ckpts / 'checkpoint-100'}\t100\thf\n"


def test_latest_json(ckpts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "checkpoint", "latest", "--json", str(ckpts))
    row = json.loads(out)
    assert code == 0 and row["path"] == str(ckpts / "checkpoint-100")
    assert (row["step"], row["format"], row["complete"], row["reason"]) == (100, "hf", True, None)
    assert isinstance(row["committed_at"], float)


def test_latest_without_a_complete_checkpoint_exits_1(
    tmp_path: Path, layouts: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    layouts.write("hf", tmp_path / "run", 200, stop_after=3)
    code, out, err = run(capsys, "checkpoint", "latest", str(tmp_path / "run"))
    assert (code, out) == (1, "")
    assert err == f"hpresil: no complete checkpoint under {tmp_path / 'run'}\n"


def test_a_bad_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "checkpoint", "latest", str(tmp_path / "nope"))
    assert (code, out, err) == (2, "", f"hpresil: {tmp_path / 'nope'}: no such directory\n")
    code, _, err = run(capsys, "checkpoint", "list", str(tmp_path / "empty.toml"))
    assert code == 2 and "not a directory" in err


def test_list_json_says_why_each_was_refused(
    ckpts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "checkpoint", "list", "--json", str(ckpts))
    rows = json.loads(out)
    assert code == 0
    assert [(r["step"], r["complete"]) for r in rows] == [(200, False), (100, True)]
    assert (
        rows[0]["reason"] == "no trainer_state.json (the Trainer writes it last: save interrupted)"
    )


def test_list_table_shows_path_step_format_and_reason(
    ckpts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "checkpoint", "list", str(ckpts))
    lines = [line for line in out.splitlines() if "checkpoint-" in line]
    assert code == 0 and len(lines) == 2
    assert "checkpoint-200" in lines[0] and "200" in lines[0] and "hf" in lines[0]
    assert "no trainer_state.json" in lines[0] and " no " in lines[0]
    assert "checkpoint-100" in lines[1] and " yes " in lines[1]


def test_list_of_a_directory_without_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "run").mkdir()
    assert run(capsys, "checkpoint", "list", str(tmp_path / "run"))[:2] == (
        0,
        f"no checkpoint found under {tmp_path / 'run'}\n",
    )


def test_verify_hashes_falls_back_past_a_changed_file(
    tmp_path: Path, layouts: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpresil.ckpt import manifest

    root = tmp_path / "run"
    for step in (1, 2):
        manifest.write(layouts.write("hpresil", root, step, stop_after=3), step, hashes=True)
    (root / "step-2" / "model.bin").write_bytes(b"\x00" * 256)  # same size, other bytes
    assert run(capsys, "checkpoint", "latest", str(root))[1].split("\t")[1] == "2"
    code, out, _ = run(capsys, "checkpoint", "latest", "--verify-hashes", str(root))
    assert code == 0 and out.split("\t")[:2] == [str(root / "step-1"), "1"]
