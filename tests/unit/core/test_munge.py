"""The MUNGE adapter against a real munged (a private one: tests/munged.py): who made a
credential, and each reason munged refuses one, in one line."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hpresil.adapters.munge import MungeRefused, MungeUnavailable, decode, encode

pytest_plugins = ["tests.munged"]


def test_a_credential_names_its_maker_and_carries_the_payload(munge_socket: str) -> None:
    before = int(time.time())
    found = decode(encode("GET\n/v1/nodes", socket=munge_socket), socket=munge_socket)
    assert (found.uid, found.gid, found.payload) == (0, 0, "GET\n/v1/nodes")
    assert before - 1 <= found.encoded_at <= time.time() + 1


def test_another_users_credential_names_them(
    munge_socket: str, munge_as: Callable[[str, str], str]
) -> None:
    found = decode(munge_as("nobody", "x"), socket=munge_socket)
    assert (found.uid, found.payload) == (65534, "x")


def test_a_credential_is_good_once(munge_socket: str) -> None:
    credential = encode("once", socket=munge_socket)
    decode(credential, socket=munge_socket)
    with pytest.raises(MungeRefused, match=r"^replayed credential$"):
        decode(credential, socket=munge_socket)


def test_a_credential_past_its_ttl_is_expired(munge_socket: str) -> None:
    argv = ["munge", "-S", munge_socket, "-t", "1", "-n"]
    credential = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    time.sleep(2.1)
    with pytest.raises(MungeRefused, match=r"^expired credential$"):
        decode(credential.strip(), socket=munge_socket)


def test_a_credential_made_with_another_key_is_invalid(
    munge_socket: str, other_munged: str
) -> None:
    credential = encode("x", socket=other_munged)
    with pytest.raises(MungeRefused, match=r"^invalid credential$"):
        decode(credential, socket=munge_socket)


def test_a_changed_credential_is_refused(munge_socket: str) -> None:
    credential = encode("drain node1", socket=munge_socket)
    middle = len(credential) // 2
    flipped = "B" if credential[middle] != "B" else "C"
    with pytest.raises(MungeRefused):
        decode(credential[:middle] + flipped + credential[middle + 1 :], socket=munge_socket)


@pytest.mark.parametrize("text", ["", "Bearer x", "MUNGE:short:", "MUNGE:" + "A" * 40 + ":\nx"])
def test_what_is_not_a_credential_never_reaches_unmunge(text: str, tmp_path: Path) -> None:
    with pytest.raises(MungeRefused, match=r"^not a MUNGE credential$"):
        decode(text, socket=str(tmp_path / "no-munged"))  # no munged there: never asked


def test_a_credential_munged_cannot_read_is_refused_with_its_reason(munge_socket: str) -> None:
    with pytest.raises(MungeRefused, match=r"^invalid credential version"):
        decode("MUNGE:" + "A" * 40 + ":", socket=munge_socket)


def test_no_munged_is_unavailable_in_one_line(tmp_path: Path) -> None:
    socket = tmp_path / "munge.socket"
    with pytest.raises(MungeUnavailable) as found:
        encode("x", socket=str(socket))
    assert str(found.value).startswith(f'MUNGE: Failed to access "{socket}"')
    assert "\n" not in str(found.value)
    with pytest.raises(MungeUnavailable):
        decode("MUNGE:" + "A" * 40 + ":", socket=str(socket))
