"""StrictModes, as sshd: a configuration or token file that another user could change
is refused with one line naming the file, its owner and mode, and the fix."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from hpresil import config
from hpresil.auth import read_token, write_token
from hpresil.cli.main import main
from hpresil.errors import ConfigError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "hpresil.toml"
    path.write_text('cluster = "c1"\n')
    path.chmod(0o644)
    return path


def test_a_file_only_its_owner_can_change_is_read(conf: Path) -> None:
    assert config.load(conf).cluster == "c1"


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_a_config_others_can_write_is_refused(conf: Path, mode: int) -> None:
    conf.chmod(mode)
    with pytest.raises(ConfigError) as info:
        config.load(conf)
    assert str(info.value) == (
        f"config {conf}: owner {me()}, mode {mode:04o}: others can change it; "
        f"run `chmod go-w {conf}`"
    )


@as_root
def test_a_config_owned_by_another_user_is_refused(conf: Path) -> None:
    os.chown(conf, nobody(), -1)
    with pytest.raises(ConfigError) as info:
        config.load(conf)
    assert str(info.value) == (
        f"config {conf}: owner nobody, mode 0644: not owned by root or a system account; "
        f"run `chown root {conf}`"
    )


def test_a_dropin_others_can_write_is_refused(conf: Path) -> None:
    dropins = conf.with_name("hpresil.toml.d")
    dropins.mkdir(mode=0o755)
    extra = dropins / "10-site.toml"
    extra.write_text("[slurm]\nbin_dir = '/tmp/evil'\n")
    extra.chmod(0o666)
    with pytest.raises(ConfigError, match=f"^config {extra}: .*mode 0666.*chmod go-w"):
        config.load(conf)


def test_a_dropin_folder_others_can_write_is_refused(conf: Path) -> None:
    dropins = conf.with_name("hpresil.toml.d")
    dropins.mkdir()
    dropins.chmod(0o777)
    with pytest.raises(ConfigError, match=f"^config folder {dropins}: .*mode 0777.*chmod go-w"):
        config.load(conf)


def test_a_config_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    folder.chmod(0o777)
    path = folder / "hpresil.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match=f"^config folder {folder}: .*others can change it"):
        config.load(path)


def test_a_sticky_folder_keeps_its_files_to_their_owners(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)  # as /tmp: only a file's owner may replace it
    path = folder / "hpresil.toml"
    path.write_text('cluster = "c2"\n')
    assert config.load(path).cluster == "c2"


def test_the_daemon_does_not_start_on_a_refused_config(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf.chmod(0o666)
    assert main(["--config", str(conf), "controller"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hpresil: config {conf}: owner ") and "chmod go-w" in line


@as_root
def test_a_token_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path)
    os.chown(path, nobody(), -1)
    with pytest.raises(ConfigError) as info:
        read_token(path)
    assert str(info.value) == (
        f"token file {path}: owner nobody, mode 0600: not owned by root or a system account; "
        f"run `chown root {path}`"
    )


@as_root
def test_a_service_user_reads_its_own_token_and_refuses_another_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller runs as its own user: a token it owns is read, one owned by a
    third user is refused (root's is still accepted)."""
    monkeypatch.setattr(os, "geteuid", nobody)
    path = tmp_path / "token"
    token = write_token(path)
    assert read_token(path) == token  # owned by root
    os.chown(path, nobody(), -1)
    assert read_token(path) == token  # owned by the user running
    os.chown(path, 4242, -1)
    with pytest.raises(ConfigError) as info:
        read_token(path)
    assert str(info.value) == (
        f"token file {path}: owner 4242, mode 0600: not owned by root or nobody; "
        f"run `chown nobody {path}`"
    )


def test_a_token_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "token"
    write_token(path)
    folder.chmod(0o777)
    with pytest.raises(ConfigError, match=f"^token folder {folder}: .*chmod go-w {folder}`$"):
        read_token(path)


def test_root_reads_the_token_of_a_system_account(tmp_path: Path) -> None:
    """Root on the controller host (the CLI) reads the token the ``hpresil`` service
    user owns; a system account is not someone who could swap it."""
    path = tmp_path / "token"
    write_token(path)
    os.chown(path, 998, -1)  # a system account's uid, as `useradd --system` gives
    assert read_token(path)
