"""How the controller listens: HTTPS with ``controller.tls_cert``/``tls_key``, else
plain HTTP on a loopback address only (unless ``controller.allow_plain_http``): the
cluster token and operators' credentials must not cross a network in clear text."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from hpresil.config import ControllerConfig
from hpresil.errors import ConfigError

_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_tls(cfg: ControllerConfig) -> dict[str, Any]:
    """uvicorn's TLS settings for ``cfg``; ConfigError (one line) for half a pair, a
    missing file, or plain HTTP on an address others can reach."""
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ConfigError("controller.tls_cert and controller.tls_key go together: set both")
    if cfg.tls_cert:
        for key, path in (("tls_cert", cfg.tls_cert), ("tls_key", cfg.tls_key)):
            if not Path(path).is_file():
                raise ConfigError(f"controller.{key}: {path} not found")
        return {"ssl_certfile": cfg.tls_cert, "ssl_keyfile": cfg.tls_key}
    if not is_loopback(cfg.listen_host) and not cfg.allow_plain_http:
        raise ConfigError(
            f"controller.listen_host {cfg.listen_host}: plain HTTP is served on a loopback "
            "address only; set controller.tls_cert and tls_key (or allow_plain_http = true "
            "on a network you trust)"
        )
    return {}
