"""The hook cannot import hpresil (it runs as ``python3 -I -S``), so it types hpresil's
defaults and its request signature out again: each one is held here to what it copies
(and the lab's node keys, stdlib only too, to hpresil's derivation)."""

from __future__ import annotations

import re
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType

import pytest

from hpresil import auth, config
from hpresil.api import DrainRequest
from hpresil.config import Config

HOOK = Path(__file__).resolve().parents[3] / "slurm-plugins" / "hpresil-hook"


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    loader = SourceFileLoader("hpresil_hook", str(HOOK))
    spec = spec_from_loader(loader.name, loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    return module


def schema_default(path: str) -> object:
    """``Config()`` at ``path``, as TOML would give it to the hook."""
    value: object = Config()
    for name in path.split("."):
        value = getattr(value, name)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def test_every_default_is_the_schemas(hook: ModuleType) -> None:
    assert hook.DEFAULTS  # the table the hook reads its settings through
    for path, value in hook.DEFAULTS.items():
        expected = schema_default(path)
        assert (path, value, type(value)) == (path, expected, type(expected))


def test_the_hook_reads_every_setting_through_the_table(hook: ModuleType) -> None:
    read = set(re.findall(r'setting\(cfg, "([^"]+)"\)', HOOK.read_text()))
    assert read == set(hook.DEFAULTS)


def test_drain_reasons_are_clipped_like_the_controllers(hook: ModuleType) -> None:
    assert hook.REASON_MAX == config.REASON_MAX


def test_the_drain_request_body_fits_the_api(hook: ModuleType) -> None:
    limit = DrainRequest.model_json_schema()["properties"]["reason"]["maxLength"]
    assert limit == hook.BODY_MAX


def test_the_hook_signs_as_hpresil_does(hook: ModuleType) -> None:
    key = auth.node_key("c" * 32, "n1")
    args = (key, "POST", "/v1/nodes/n1/drain", "n1", 1_700_000_000, "ab" * 16, b'{"reason": "x"}')
    assert hook.signature(*args) == auth.request_signature(*args)
    assert hook.NODE_SCHEME == auth.NODE_SCHEME
    header = hook.authorization(key, "POST", "/v1/nodes/n1/drain", "n1", b"{}")
    scheme, _, fields = header.partition(" ")
    signed = auth.NodeSignature.parse(fields)
    assert (scheme, signed.header()) == (auth.NODE_SCHEME, header)


def test_the_config_is_found_where_hpresil_looks(hook: ModuleType) -> None:
    assert str(config.DEFAULT_PATH) == hook.DEFAULT_CONFIG
    assert config.ENV_VAR == hook.CONFIG_ENV


def test_a_setting_the_config_leaves_out_is_its_default(hook: ModuleType) -> None:
    cfg = {"hooks": {"fresh_s": 30.0}, "agent": {"gpu": "not a table"}}
    assert hook.setting(cfg, "hooks.fresh_s") == 30.0
    assert hook.setting(cfg, "hooks.mount_timeout_s") == 1.0
    assert hook.setting(cfg, "agent.gpu.expected_count") is None
    assert hook.setting({}, "controller.url") == "http://127.0.0.1:8787"


def test_the_lab_gives_each_node_the_key_hpresil_derives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HOOK.parents[1] / "scripts"))  # lab imports gpu_double
    loader = SourceFileLoader("hpresil_lab", str(HOOK.parents[1] / "scripts" / "lab.py"))
    spec = spec_from_loader(loader.name, loader)
    assert spec is not None
    lab_module = module_from_spec(spec)
    monkeypatch.setitem(sys.modules, loader.name, lab_module)  # its dataclass looks it up
    loader.exec_module(lab_module)
    lab = lab_module.Lab(root=tmp_path, nodes=2)
    (tmp_path / "etc").mkdir()
    lab._write_node_keys("c" * 32)
    for node in ("node1", "node2"):
        assert auth.read_node_key(lab.key_file(node)) == auth.node_key("c" * 32, node)
