"""The health hook over several controller URLs (replicas): its drain goes to the
first that serves it, the next one tried when one is unreachable or answers
502/503/504, each request signed afresh; a refusal, or none serving, drains directly.
Real HTTP on local ports (tests/standin.py), the hook run as Slurm runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpresil.auth import NodeSignature, node_key, request_signature
from tests.standin import Answering, Closed, Seen, Silent
from tests.unit.hooks import test_hook as base

KEY = node_key(base.CLUSTER_TOKEN, "n1")
DRAINED = {"node": "n1", "drained": True}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A node with 8 GPUs, a fresh failing verdict and its key; ``Slurm`` says IDLE."""
    (tmp_path / "dev").mkdir()
    for i in range(8):
        (tmp_path / "dev" / f"nvidia{i}").touch()
    key_file = tmp_path / "n1.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    base.verdict(tmp_path, "fail", summary="GPU 2: 3 uncorrected ECC errors")
    return tmp_path


@pytest.fixture
def stands() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for one in made:
        one.close()


def health(site: Path, *controllers: Any) -> str:
    """Run the health hook with ``controller.url`` listing ``controllers``; its stderr."""
    return health_with(site, "[" + ", ".join(f'"{c.url}"' for c in controllers) + "]")


def health_with(site: Path, url: str) -> str:
    """Run the health hook with ``url = <url>`` (TOML) and n1's key; its stderr."""
    base.write_config(site, f"[controller]\nurl = {url}\n")
    text = (site / "hpresil.toml").read_text()
    agent = f'[agent]\nkey_file = "{site}/{{node}}.key"\n'
    (site / "hpresil.toml").write_text(text.replace("[agent]\n", agent, 1))
    done = base.hook(site, "health", extra_env=base._fake_scontrol(site, "IDLE"))
    assert done.returncode == 0
    return done.stderr


def signed_by_n1(seen: Seen) -> str:
    """The nonce of a drain request n1 signed with its key (AssertionError otherwise)."""
    scheme, _, fields = seen.authorization.partition(" ")
    s = NodeSignature.parse(fields)
    expected = request_signature(KEY, "POST", seen.target, "n1", s.ts, s.nonce, seen.body)
    assert (scheme, s.node, s.sig) == ("HPRESIL-NODE", "n1", expected)
    assert json.loads(seen.body) == {"reason": "healthcheck: GPU 2: 3 uncorrected ECC errors"}
    return s.nonce


def drained_directly(site: Path) -> bool:
    return (site / "scontrol-writes").exists()


def test_a_refused_connection_sends_the_drain_to_the_next(site: Path, stands: list[Any]) -> None:
    stands += [Closed(), Answering(200, DRAINED)]
    err = health(site, *stands)
    (seen,) = stands[1].seen
    assert seen.target == "/v1/nodes/n1/drain"
    signed_by_n1(seen)
    assert f"drained n1 through the controller {stands[1].url}" in err
    assert not drained_directly(site)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_busy_controller_passes_the_drain_on_signed_afresh(
    site: Path, stands: list[Any], status: int
) -> None:
    stands += [Answering(status), Answering(200, DRAINED)]
    health(site, *stands)
    (first,), (second,) = stands[0].seen, stands[1].seen
    assert signed_by_n1(first) != signed_by_n1(second)  # a new nonce for each controller
    assert not drained_directly(site)


def test_a_controller_that_hangs_up_is_passed_over(site: Path, stands: list[Any]) -> None:
    stands += [Silent(hangup=True), Answering(200, DRAINED)]
    health(site, *stands)
    assert (stands[0].connections, len(stands[1].seen)) == (1, 1)
    assert not drained_directly(site)


def test_a_refusal_is_not_sent_elsewhere_the_node_is_drained_directly(
    site: Path, stands: list[Any]
) -> None:
    stands += [Answering(400), Answering(200, DRAINED)]
    err = health(site, *stands)
    assert (len(stands[0].seen), stands[1].seen) == (1, [])
    assert f"{stands[0].url} answered 400" in err
    assert drained_directly(site)


def test_when_no_controller_serves_each_is_named_and_the_node_drained_directly(
    site: Path, stands: list[Any]
) -> None:
    stands += [Closed(), Answering(503), Silent(hangup=True)]
    err = health(site, *stands)
    (line,) = [line for line in err.splitlines() if "draining directly" in line]
    assert f"{stands[0].url} unreachable: " in line
    assert f"{stands[1].url} answered 503" in line
    assert f"{stands[2].url} unreachable: " in line
    assert drained_directly(site)


def test_the_controllers_share_a_bounded_time(site: Path, stands: list[Any]) -> None:
    """A controller that never answers takes a try's time (2 s); the next gets what
    is left of the 3 s, so the direct drain still fits inside the hook's 5 s alarm."""
    stands += [Silent(hangup=False), Silent(hangup=False), Answering(200, DRAINED)]
    err = health(site, *stands)
    assert [s.connections for s in stands[:2]] == [1, 1]
    assert stands[2].seen == [] and f"{stands[2].url} not tried (out of time)" in err
    assert drained_directly(site)


def test_one_url_as_a_string_still_works(site: Path, stands: list[Any]) -> None:
    stands += [Answering(200, DRAINED)]
    err = health_with(site, f'"{stands[0].url}"')
    assert f"drained n1 through the controller {stands[0].url}" in err
    signed_by_n1(stands[0].seen[0])
    assert not drained_directly(site)


def test_a_url_under_a_path_is_signed_as_sent(site: Path, stands: list[Any]) -> None:
    stands += [Answering(200, DRAINED)]
    health_with(site, f'["{stands[0].url}/hpresil/"]')
    (seen,) = stands[0].seen
    assert seen.target == "/hpresil/v1/nodes/n1/drain"
    signed_by_n1(seen)  # over the path the controller receives


def test_what_is_not_an_http_url_is_left_out(site: Path, stands: list[Any]) -> None:
    stands += [Answering(200, DRAINED)]
    err = health_with(site, f'["ctl1:8787", 8787, "{stands[0].url}"]')
    assert "is not an http:// or https:// URL" in err
    assert len(stands[0].seen) == 1 and not drained_directly(site)
