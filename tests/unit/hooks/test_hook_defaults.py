"""The hook cannot import hpresil (it runs as ``python3 -I -S``), so it types hpresil's
defaults out again: each one is held here to the schema it copies."""

from __future__ import annotations

import re
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType

import pytest

from hpresil import config
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


def test_the_config_is_found_where_hpresil_looks(hook: ModuleType) -> None:
    assert str(config.DEFAULT_PATH) == hook.DEFAULT_CONFIG
    assert config.ENV_VAR == hook.CONFIG_ENV


def test_a_setting_the_config_leaves_out_is_its_default(hook: ModuleType) -> None:
    cfg = {"hooks": {"fresh_s": 30.0}, "agent": {"gpu": "not a table"}}
    assert hook.setting(cfg, "hooks.fresh_s") == 30.0
    assert hook.setting(cfg, "hooks.mount_timeout_s") == 1.0
    assert hook.setting(cfg, "agent.gpu.expected_count") is None
    assert hook.setting({}, "controller.url") == "http://127.0.0.1:8787"
