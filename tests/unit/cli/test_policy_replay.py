"""``hpresil policy replay`` against a database on disk: read-only, the configuration
in use shows no difference, another one its drains added and removed."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hpresil.cli.main import main
from hpresil.config import Config, PolicyConfig
from hpresil.controller.ingest import Ingest
from hpresil.store import Store, repo
from tests.unit.controller.fakes import FakeClock, report, xid79


@pytest.fixture
def database(cfg: Config, store: Store) -> Path:
    """A day-old story: XID 79 on node1, then on node2 (both drained, jobs requeued)."""
    clock = FakeClock(datetime.now(UTC) - timedelta(days=1))
    with store.write() as s:
        for name in ("node1", "node2", "node3"):
            repo.ensure_node(s, name, clock.now)
    ingest = Ingest(store, PolicyConfig.model_validate(IN_USE["policy"]), clock, lambda: None)
    ingest(report("node1", xid79()))
    clock.advance(60)
    ingest(report("node2", xid79()))
    clock.advance(60)
    ingest(report("node3"))
    store.close()  # the CLI opens it on its own
    url = cfg.controller.database
    return Path(url.removeprefix("sqlite:///"))


IN_USE = {"policy": {"expedite_requeue": False, "limits": {"max_out_pct": 100}}}  # 3 out of 3


def conf(tmp_path: Path, name: str, db: Path, max_out: int = 1000) -> Path:
    path = tmp_path / name
    path.write_text(
        f'[controller]\ndatabase = "sqlite:///{db}"\n'
        "[policy]\nexpedite_requeue = false\n"
        f"[policy.limits]\nmax_out_pct = 100\nmax_out = {max_out}\n"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_configuration_in_use_shows_no_difference(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    path = conf(tmp_path, "in-use.toml", database)
    code, out, err = run(capsys, "--config", str(path), "policy", "replay", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert (found["reports"], found["judged"], found["episodes"]) == (
        2,
        2,
        2,
    )  # a heartbeat is not stored
    assert found["differences"] == [] and found["config"] is None
    assert found["drained_stored"] == found["drained_replayed"] == 2
    assert found["seconds"] >= 0
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before  # read-only


def test_another_configuration_shows_the_drains_it_holds_back(
    database: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # the table on one line per row
    path = conf(tmp_path, "in-use.toml", database)
    other = conf(tmp_path, "other.toml", database, max_out=1)
    args = ["--config", str(path), "policy", "replay", "--config", str(other)]
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["config"] == str(other)
    assert found["kept_in_service"] == ["node2"]
    (diff,) = found["differences"]
    assert (diff["node"], diff["changes"], diff["category"]) == (
        "node2",
        ["drain removed"],
        "gpu_lost_pcie",
    )
    assert diff["stored"] == {"drained": True, "held_by": None, "requeued": True}
    assert diff["replayed"] == {"drained": False, "held_by": "capped", "requeued": True}

    code, out, err = run(capsys, *args)  # the table, for people
    assert code == 0, err
    flat = " ".join(out.split())
    assert "drain removed" in flat and "kept in service: node2" in flat
    assert "2 report(s) replayed (2 with a fault, 0 unreadable)" in flat


def test_since_bounds_the_replay(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = conf(tmp_path, "in-use.toml", database)
    code, out, _ = run(capsys, "--config", str(path), "policy", "replay", "--since", "2h", "--json")
    assert code == 0
    assert json.loads(out)["reports"] == 0
    code, _, err = run(capsys, "--config", str(path), "policy", "replay", "--since", "a week")
    assert code == 2 and "--since" in err


def test_a_missing_database_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none" / "hpresil.db"
    path = conf(tmp_path, "in-use.toml", missing)
    code, _, err = run(capsys, "--config", str(path), "policy", "replay")
    assert code != 0 and "no such file" in err
    assert not missing.parent.exists()
