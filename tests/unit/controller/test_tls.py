"""TLS on the API (issue 11): the controller serves HTTPS with controller.tls_cert and
tls_key; clients verify it against controller.tls_ca; plain HTTP is served on a
loopback address only unless a site says its network is trusted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.client import ControllerClient
from hpresil.config import Config, ControllerConfig
from hpresil.controller.app import create_app
from hpresil.controller.remediation import Executor
from hpresil.controller.tls import server_tls
from hpresil.errors import ConfigError, ControllerUnavailable
from hpresil.store import Store
from tests.serve import served
from tests.unit.controller.fakes import TOKEN, FakeClock


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run([*argv, *files, *names], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https(
    pem: tuple[Path, Path], store: Store, slurm: Slurm, cfg: Config, executor: Executor
) -> Iterator[str]:
    """The controller served over TLS by uvicorn, as `hpresil controller` serves it."""
    cert, key = pem
    tls = server_tls(ControllerConfig(tls_cert=str(cert), tls_key=str(key)))
    app = create_app(store=store, slurm=slurm, config=cfg, token=TOKEN, clock=FakeClock())
    with served(app, **tls) as url:
        yield url


def _client(tmp_path: Path, url: str, ca: str) -> ControllerClient:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    cfg = Config(controller=ControllerConfig(url=url, token_file=token, tls_ca=ca))
    return ControllerClient.from_config(cfg)


def test_a_client_that_trusts_the_ca_talks_https(
    https: str, pem: tuple[Path, Path], tmp_path: Path
) -> None:
    with _client(tmp_path, https, str(pem[0])) as client:
        assert [n.name for n in client.nodes()] == []


def test_a_certificate_nobody_vouches_for_is_refused(https: str, tmp_path: Path) -> None:
    with _client(tmp_path, https, "") as client, pytest.raises(ControllerUnavailable) as info:
        client.nodes()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_plain_http_to_the_tls_port_gets_no_answer(https: str, tmp_path: Path) -> None:
    plain = https.replace("https://", "http://")
    with _client(tmp_path, plain, "") as client, pytest.raises(ControllerUnavailable):
        client.nodes()


def test_plain_http_is_served_on_loopback_only() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert server_tls(ControllerConfig(listen_host=host)) == {}
    with pytest.raises(ConfigError) as info:
        server_tls(ControllerConfig(listen_host="0.0.0.0"))
    assert str(info.value).startswith(
        "controller.listen_host 0.0.0.0: plain HTTP is served on a loopback address only"
    )
    assert server_tls(ControllerConfig(listen_host="0.0.0.0", allow_plain_http=True)) == {}


def test_half_a_pair_or_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls_cert and controller\.tls_key go together"):
        server_tls(ControllerConfig(tls_cert=str(tmp_path / "c.pem")))
    missing = ControllerConfig(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k"))
    with pytest.raises(ConfigError, match=r"controller.tls_cert: .*c.pem not found"):
        server_tls(missing)


def test_a_ca_file_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^controller.tls_ca .*absent.pem: "):
        _client(tmp_path, "https://127.0.0.1:1", str(tmp_path / "absent.pem"))
