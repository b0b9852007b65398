"""GpuSamples to JSON (scripts/record-gpu-fixture) and back (the tests' reader)."""

from __future__ import annotations

import json

import pytest

from hpresil.adapters.gpu.dump import samples_to_json
from tests.unit.gpu.recorded import samples_from_json
from tests.unit.gpu.samples import REAL, h100s, real


@pytest.mark.parametrize("name", REAL)
def test_real_samples_round_trip(name: str) -> None:
    samples = list(real(name))
    assert samples_from_json(samples_to_json(samples)) == samples


def test_h100s_read_through_nvml_round_trip_as_plain_json() -> None:
    samples = list(h100s())
    text = samples_to_json(samples)
    plain = json.loads(text)
    assert plain[0]["fabric"] == {  # one HGX board: clique 0, no cluster UUID
        "state": "completed",
        "status": "success",
        "clique_id": 0,
        "cluster_uuid": None,
    }
    assert len(plain[0]["nvlink"]) == 18
    assert samples_from_json(text) == samples
