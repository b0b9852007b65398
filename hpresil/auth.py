"""The shared bearer token: one line in a file only its owner can read (mode 0600 or
stricter), owned by root or by the user reading it (the controller's service user)."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from hpresil.config import refuse_unsafe
from hpresil.errors import ConfigError


def read_token(path: Path, *, required: bool = True) -> str | None:
    """Read the token; refuse a file that group or others can read, or that a user
    other than root or the one running owns (they could swap the token)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if required:
            msg = f"token file {path}: not found (create it with `hpresil token`)"
            raise ConfigError(msg) from None
        return None
    except PermissionError:
        if required:
            raise ConfigError(f"token file {path}: permission denied (run as root)") from None
        return None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"token file {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; "
            f"run `chmod 600 {path}`"
        )
    refuse_unsafe("token file", path, st)
    refuse_unsafe("token folder", path.parent, path.parent.stat())
    try:
        token = path.read_text().strip()
    except PermissionError:  # anyone may stat a 0600 root file; only root may read it
        if required:
            raise ConfigError(f"token file {path}: permission denied (run as root)") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"token file {path}: cannot read: {exc}") from None
    if len(token) < 16:
        raise ConfigError(f"token file {path}: token shorter than 16 characters")
    return token


def write_token(path: Path) -> str:
    """Create a new random token file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
