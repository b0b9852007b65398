"""The recovery_action check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hpresil.checks.recovery_action import RecoveryActionCheck
from hpresil.vocab import Action, Status
from tests.unit.gpu.samples import A100, BLACKWELL, h100s, real, snap


def test_none_passes_and_a_missing_field_is_unsupported() -> None:
    assert RecoveryActionCheck().evaluate(snap(real(BLACKWELL)))[0].status is Status.OK
    assert RecoveryActionCheck().evaluate(snap(real(A100)))[0].status is Status.UNSUPPORTED


@pytest.mark.parametrize(
    ("value", "action"),
    [
        (1, Action.RESET_GPU),
        (2, Action.REBOOT),
        (3, Action.DRAIN),
        (4, Action.RESET_GPU),
        (5, Action.DRAIN),
        (6, Action.RESET_GPU),
        (7, Action.REBOOT),
    ],
)
def test_the_drivers_request_is_followed(value: int, action: Action) -> None:
    (r,) = RecoveryActionCheck().evaluate(snap([replace(h100s()[0], recovery_action=value)]))
    assert (r.status, r.action) == (Status.FAIL, action) and r.is_fault
    assert r.evidence["recovery_action"] == value


def test_an_unknown_value_warns() -> None:
    (r,) = RecoveryActionCheck().evaluate(snap([replace(h100s()[0], recovery_action=42)]))
    assert r.status is Status.WARN and not r.is_fault
