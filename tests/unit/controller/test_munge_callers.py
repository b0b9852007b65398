"""People act as themselves, the way Slurm authenticates them: a MUNGE credential made
for one request (a real, private munged: tests/munged.py).

Anyone munged vouches for may read; root, ``controller.operators`` and the members of
``controller.operators_group`` may also write, and the ledger names them; a refused,
replayed or foreign credential, or one made for another request, is 401, and a
reader's write 403, with nothing done."""

from __future__ import annotations

import grp
import json
import pwd
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.auth import MungePayload
from hpresil.client import MungeCredential
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller.app import create_app
from hpresil.store import Store
from hpresil.store.models import ActionRow, IncidentRow
from tests.unit.controller.fakes import FakeBackend, FakeClock
from tests.unit.controller.test_reports import count

pytest_plugins = ["tests.munged"]

MungeAs = Callable[[str, str], str]
ROOT_GROUP = grp.getgrgid(0).gr_name  # a group nobody is not in
DRAIN = "/v1/nodes/node1/drain"
REASON = b'{"reason": "swap the PSU"}'
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def cfg(tmp_path: Path, munge_socket: str) -> Config:
    """The controller's settings (SQLite only: who calls does not depend on the database)."""
    controller = ControllerConfig(
        database=f"sqlite:///{tmp_path}/state/hpresil.db",
        munge_socket=munge_socket,
        operators_group=ROOT_GROUP,
    )
    policy = PolicyConfig(expedite_requeue=False, limits=LimitsConfig(max_out_pct=100))
    return Config(controller=controller, policy=policy)


@contextmanager
def serving(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, **controller: object
) -> Iterator[TestClient]:
    """A client of the app with ``controller`` settings changed, and no token."""
    changed = cfg.model_copy(update={"controller": cfg.controller.model_copy(update=controller)})
    app = create_app(store=store, slurm=slurm, config=changed, token="t" * 32, clock=clock)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def api(store: Store, slurm: Slurm, cfg: Config, clock: FakeClock) -> Iterator[TestClient]:
    with serving(store, slurm, cfg, clock) as c:
        yield c


def as_root(cfg: Config, method: str, target: str, body: bytes = b"") -> dict[str, str]:
    """Headers of a request root makes with the CLI's credential."""
    credential = MungeCredential(cfg.controller.munge_socket)
    return {"Authorization": credential.authorization(method, target, body)}


def by(munge_as: MungeAs, user: str, method: str, target: str, body: bytes = b"") -> dict[str, str]:
    """Headers of a request ``user`` made a credential for."""
    payload = MungePayload.of(method, target, body).text()
    return {"Authorization": f"MUNGE {munge_as(user, payload)}"}


def drain(client: TestClient, headers: dict[str, str], body: bytes = REASON) -> tuple[int, str]:
    answer = client.post(DRAIN, content=body, headers=headers | JSON)
    return answer.status_code, answer.json().get("detail", "")


def in_service(backend: FakeBackend, store: Store) -> bool:
    drained = "DRAIN" in backend.nodes_by_name["node1"].states
    return not drained and count(store, IncidentRow) == 0 and count(store, ActionRow) == 0


def whys(client: TestClient, cfg: Config) -> list[str]:
    found = client.get("/v1/incidents/1", headers=as_root(cfg, "GET", "/v1/incidents/1"))
    return [a["why"] for a in found.json()["actions"]]


# --- who may do what ---
def test_root_is_an_operator_and_the_ledger_names_root(api: TestClient, cfg: Config) -> None:
    answer = api.post(DRAIN, content=REASON, headers=as_root(cfg, "POST", DRAIN, REASON) | JSON)
    assert answer.json() == {"outcome": "drained", "incident": 1}
    resume = "/v1/nodes/node1/resume"
    assert api.post(resume, headers=as_root(cfg, "POST", resume)).status_code == 200
    assert whys(api, cfg) == [
        "root (munge uid 0): swap the PSU",
        "root (munge uid 0): return to service",
    ]


def test_anyone_munged_vouches_for_may_read(api: TestClient, munge_as: MungeAs) -> None:
    for target in ("/v1/nodes", "/v1/incidents?status=open&node=node2", "/v1/breakers"):
        answer = api.get(target, headers=by(munge_as, "nobody", "GET", target))
        assert answer.status_code == 200, (target, answer.text)


def test_a_readers_write_is_403_naming_the_group_and_nothing_is_done(
    api: TestClient, munge_as: MungeAs, backend: FakeBackend, store: Store
) -> None:
    found = drain(api, by(munge_as, "nobody", "POST", DRAIN, REASON))
    assert found == (
        403,
        f"nobody (uid 65534) is not an operator: not in controller.operators_group "
        f"{ROOT_GROUP!r} nor controller.operators",
    )
    reset = "/v1/breakers/gpu_lost_pcie/reset"
    assert api.post(reset, headers=by(munge_as, "nobody", "POST", reset)).status_code == 403
    report = json.dumps({"node": "node1"}).encode()
    answer = api.post(
        "/v1/reports", content=report, headers=by(munge_as, "nobody", "POST", "/v1/reports", report)
    )
    assert answer.status_code == 403
    assert in_service(backend, store)


def test_a_group_that_does_not_exist_is_named(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, munge_as: MungeAs
) -> None:
    with serving(store, slurm, cfg, clock, operators_group="hpresil-no-such-group") as api:
        status, detail = drain(api, by(munge_as, "nobody", "POST", DRAIN, REASON))
    assert status == 403
    assert detail == (
        "nobody (uid 65534) is not an operator: controller.operators_group "
        "'hpresil-no-such-group' is no group on the controller host, and not in "
        "controller.operators"
    )


def test_a_member_of_the_operators_group_is_an_operator(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, munge_as: MungeAs
) -> None:
    primary = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name  # nogroup on Debian
    with serving(store, slurm, cfg, clock, operators_group=primary) as api:
        assert drain(api, by(munge_as, "nobody", "POST", DRAIN, REASON)) == (200, "")
        assert whys(api, cfg) == ["nobody (munge uid 65534): swap the PSU"]


def test_a_supplementary_member_of_the_operators_group_is_an_operator(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, munge_as: MungeAs
) -> None:
    users = {u.pw_name for u in pwd.getpwall() if u.pw_uid != 0}
    found = [(g.gr_name, m) for g in grp.getgrall() for m in g.gr_mem if m in users]
    if not found:
        pytest.skip("no user on this host has a supplementary group")
    group, user = found[0]
    with serving(store, slurm, cfg, clock, operators_group=group) as api:
        assert drain(api, by(munge_as, user, "POST", DRAIN, REASON)) == (200, "")


def test_a_user_named_in_operators_is_an_operator(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, munge_as: MungeAs
) -> None:
    with serving(store, slurm, cfg, clock, operators=("nobody",), operators_group="") as api:
        assert drain(api, by(munge_as, "nobody", "POST", DRAIN, REASON)) == (200, "")


# --- refused: 401, with nothing done ---
def test_a_replayed_credential_is_401(
    api: TestClient, cfg: Config, backend: FakeBackend, store: Store
) -> None:
    headers = as_root(cfg, "GET", "/v1/nodes")
    assert api.get("/v1/nodes", headers=headers).status_code == 200
    again = api.get("/v1/nodes", headers=headers)
    assert (again.status_code, again.json()) == (401, {"detail": "MUNGE: replayed credential"})
    assert again.headers["WWW-Authenticate"] == "MUNGE"


def test_a_credential_made_for_another_request_is_401(
    api: TestClient, cfg: Config, backend: FakeBackend, store: Store
) -> None:
    answer = api.post(DRAIN, content=REASON, headers=as_root(cfg, "POST", "/v1/nodes/node2/drain"))
    assert (answer.status_code, answer.json()["detail"]) == (
        401,
        f"MUNGE: credential made for POST /v1/nodes/node2/drain, not for POST {DRAIN}",
    )
    read = as_root(cfg, "GET", "/v1/nodes")
    answer = api.get("/v1/incidents", headers=read)
    assert answer.status_code == 401
    assert in_service(backend, store)


def test_a_credential_made_for_another_body_is_401(
    api: TestClient, cfg: Config, backend: FakeBackend, store: Store
) -> None:
    other = b'{"reason": "something else"}'
    assert drain(api, as_root(cfg, "POST", DRAIN, other)) == (
        401,
        "MUNGE: credential made for another body, not this request's",
    )
    assert in_service(backend, store)


def test_a_credential_of_another_munge_key_is_401(
    api: TestClient, other_munged: str, backend: FakeBackend, store: Store
) -> None:
    foreign = MungeCredential(other_munged).authorization("POST", DRAIN, REASON)
    assert drain(api, {"Authorization": foreign}) == (401, "MUNGE: invalid credential")
    assert in_service(backend, store)


@pytest.mark.parametrize("credential", ["", "x", "MUNGE:" + "A" * 40 + ":"])
def test_what_is_not_a_credential_is_401(api: TestClient, credential: str) -> None:
    answer = api.get("/v1/nodes", headers={"Authorization": f"MUNGE {credential}"})
    assert answer.status_code == 401 and answer.json()["detail"].startswith("MUNGE: ")


def test_a_credential_for_something_else_than_hpresil_is_401(
    api: TestClient, munge_as: MungeAs
) -> None:
    answer = api.get("/v1/nodes", headers={"Authorization": f"MUNGE {munge_as('root', 'x')}"})
    assert (answer.status_code, answer.json()["detail"]) == (
        401,
        "MUNGE: the credential's payload is not an hpresil request",
    )


def test_the_controllers_munged_down_is_503(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, tmp_path: Path
) -> None:
    headers = as_root(cfg, "GET", "/v1/nodes")
    with serving(store, slurm, cfg, clock, munge_socket=f"{tmp_path}/no-munged") as api:
        answer = api.get("/v1/nodes", headers=headers)
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("MUNGE: Failed to access")
    assert answer.json()["detail"].endswith("(the controller's munged)")
