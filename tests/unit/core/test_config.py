"""Configuration: typed schema, one-line errors naming the key path, drop-ins."""

from pathlib import Path

import pytest

from hpresil import config
from hpresil.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_when_default_file_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPRESIL_CONFIG", raising=False)
    monkeypatch.setattr(config, "DEFAULT_PATH", Path("/nonexistent/hpresil.toml"))
    cfg = config.load()
    assert cfg.agent.gpu.backend == "nvml" and cfg.controller.listen_port == 8787


def test_explicit_missing_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        config.load("/nonexistent/x.toml")


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    p = write(tmp_path / "h.toml", "[agent.gpu]\nbackend = 'nvml'\nbakend = 'x'\n")
    with pytest.raises(ConfigError) as info:
        config.load(p)
    assert str(info.value) == f"config {p}: agent.gpu.bakend: unknown key"
    assert info.value.exit_code == 2


def test_bad_value_names_its_path(tmp_path: Path) -> None:
    p = write(tmp_path / "h.toml", "[controller]\nlisten_port = 70000\n")
    with pytest.raises(ConfigError, match=r"controller\.listen_port: Input should be less"):
        config.load(p)


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    p = write(tmp_path / "h.toml", "[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        config.load(p)
    assert "\n" not in str(info.value)


def test_env_var_and_dropins_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path / "h.toml", "cluster = 'a'\n[agent]\npoll_s = 3\nheartbeat_s = 7\n")
    (tmp_path / "h.toml.d").mkdir()
    write(tmp_path / "h.toml.d" / "10-site.toml", "[agent]\npoll_s = 1.5\n")
    monkeypatch.setenv("HPRESIL_CONFIG", str(p))
    cfg = config.load()
    assert (cfg.cluster, cfg.agent.poll_s, cfg.agent.heartbeat_s) == ("a", 1.5, 7)
    assert cfg.source == p


def test_node_placeholder_expands() -> None:
    assert config.expand("/var/lib/hpresil/spool/{node}", "gpu7") == Path(
        "/var/lib/hpresil/spool/gpu7"
    )


def test_check_sections_are_validated_with_their_key_path(tmp_path: Path) -> None:
    p = write(tmp_path / "h.toml", "[checks.ib]\nflap_count = -1\n")
    with pytest.raises(ConfigError, match=r"checks\.ib\.flap_count"):
        config.load(p)


def test_disabled_checks_are_not_built(tmp_path: Path) -> None:
    from hpresil.assembly import checks_for

    p = write(tmp_path / "h.toml", '[checks]\ndisabled = ["processes", "ib"]\n')
    names = {c.name for c in checks_for(config.load(p))}
    assert "processes" not in names and "ib" not in names
    assert {"headroom", "services", "ecc"} <= names


def test_agent_runs_quick_and_continuous_checks_never_deep_ones() -> None:
    from hpresil.assembly import agent_registry, registry_for

    cfg = config.parse({})
    assert "dcgm_diag" in registry_for(cfg).names()
    names = agent_registry(cfg, plugins=False).names()
    assert "dcgm_diag" not in names and {"dcgm_health", "xid", "ib"} <= set(names)


def test_xid_overrides_come_from_the_config(tmp_path: Path) -> None:
    p = write(tmp_path / "h.toml", '[xid.overrides.13]\naction = "drain"\n')
    with pytest.raises(ConfigError, match=r"xid\.overrides"):
        config.load(p)  # application XIDs never drain a node


@pytest.mark.parametrize("module", ["hpresil.config", "hpresil.cli.main", "hpresil.assembly"])
def test_module_imports_in_a_fresh_interpreter(module: str) -> None:
    """Check modules carry their own config models: no import cycle through config."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_controller_url_is_one_url_or_a_list(tmp_path: Path) -> None:
    one = write(tmp_path / "one.toml", '[controller]\nurl = "https://ctl1:8787"\n')
    assert config.load(one).controller.urls == ("https://ctl1:8787",)
    text = '[controller]\nurl = ["https://ctl1:8787", "http://ctl2:8787/"]\n'
    many = write(tmp_path / "many.toml", text)
    assert config.load(many).controller.urls == ("https://ctl1:8787", "http://ctl2:8787/")
    assert config.parse({}).controller.urls == ("http://127.0.0.1:8787",)


@pytest.mark.parametrize(
    ("toml", "why"),
    [
        ('"ctl1:8787"', "'ctl1:8787' is not an http:// or https:// URL"),
        ('["https://ctl1:8787", "ftp://ctl2"]', "'ftp://ctl2' is not an http:// or https://"),
        ('["https://ctl1:8787", 8787]', "8787 is not an http:// or https:// URL"),
        ('"http://ctl1:port"', "'http://ctl1:port' is not an http:// or https:// URL"),
        ("[]", "expected a URL or a non-empty list of URLs"),
    ],
)
def test_a_bad_controller_url_is_one_line_naming_the_key(
    tmp_path: Path, toml: str, why: str
) -> None:
    p = write(tmp_path / "h.toml", f"[controller]\nurl = {toml}\n")
    with pytest.raises(ConfigError) as info:
        config.load(p)
    assert str(info.value).startswith(f"config {p}: controller.url: ")
    assert why in str(info.value) and "\n" not in str(info.value)


def test_tls_is_set_up_when_any_controller_url_is_https() -> None:
    from hpresil.client import tls_context

    plain = config.parse({"controller": {"url": ["http://a:1", "http://b:1"]}})
    mixed = config.parse({"controller": {"url": ["http://a:1", "https://b:1"]}})
    assert tls_context(plain) is None
    assert tls_context(mixed) is not None
