"""GpuSamples to JSON and back (scripts/record-gpu-fixture)."""

from __future__ import annotations

import json
import uuid

import pytest

from hpresil.adapters.gpu.dump import samples_from_json, samples_to_json
from tests.unit.gpu.samples import REAL, h100s, real


@pytest.mark.parametrize("name", REAL)
def test_real_samples_round_trip(name: str) -> None:
    samples = list(real(name))
    assert samples_from_json(samples_to_json(samples)) == samples


def test_h100s_read_through_nvml_round_trip_as_plain_json() -> None:
    samples = list(h100s())
    text = samples_to_json(samples)
    plain = json.loads(text)
    fabric = plain[0]["fabric"]
    assert (fabric["state"], fabric["status"], fabric["clique_id"]) == ("completed", "success", 1)
    assert str(uuid.UUID(fabric["cluster_uuid"])) == fabric["cluster_uuid"]
    assert len(plain[0]["nvlink"]) == 18
    assert samples_from_json(text) == samples
