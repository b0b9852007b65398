"""The spool holds reports naming nodes, GPUs and jobs: the agent's alone (0700)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from hpresil.agent.spool import Spool


def test_a_new_spool_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        Spool(tmp_path / "spool" / "node1")
    finally:
        os.umask(old)
    assert (tmp_path / "spool" / "node1").stat().st_mode & 0o777 == 0o700


def test_an_existing_open_spool_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "node1"
    folder.mkdir()
    folder.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="hpresil.agent.spool"):
        Spool(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert [r.getMessage() for r in caplog.records] == [
        f"spool {folder} was mode 0755, open to others: now 0700"
    ]


def test_an_owner_only_spool_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "node1"
    folder.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING, logger="hpresil.agent.spool"):
        Spool(folder)
    assert folder.stat().st_mode & 0o777 == 0o700 and not caplog.records
