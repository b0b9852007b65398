"""The bearer token file must be root-only."""

import os
from pathlib import Path

import pytest

from hpresil.auth import read_token, token_matches, write_token
from hpresil.errors import ConfigError


def test_round_trip_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = write_token(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_token(path) == token
    assert token_matches(token, token) and not token_matches(token, token + "x")


def test_group_readable_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(path)


def test_missing_token(tmp_path: Path) -> None:
    assert read_token(tmp_path / "none", required=False) is None
    with pytest.raises(ConfigError, match="not found"):
        read_token(tmp_path / "none")
