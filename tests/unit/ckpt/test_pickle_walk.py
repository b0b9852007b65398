"""Reading integers and DCP storage references out of pickles without unpickling them."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest

from hpresil.ckpt import _pickle


class Boom:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_first_ints_follow_their_keys_through_memo_references(protocol: int) -> None:
    key = "global_step"  # one object: pickled once (a list item), then a memo reference
    data = {"monitor": [key], key: 1200, "loops": [{key: 5}], "dp_world_size": 8}
    blob = io.BytesIO(pickle.dumps(data, protocol=protocol))
    found, _ = _pickle.first_ints(blob, (key, "dp_world_size"), limit=1 << 20)
    assert found == {"global_step": 1200, "dp_world_size": 8}


def test_storage_refs_take_the_largest_end_per_file_and_resolve_memoized_names() -> None:
    name = "__0_0.distcp"  # one object: pickled once, referenced after
    storage = {
        "a": {"relative_path": name, "offset": 0, "length": 100},
        "b": {"relative_path": name, "offset": 100, "length": 28},
        "c": {"relative_path": "__1_0.distcp", "offset": 0, "length": 7},
    }
    blob = pickle.dumps({"storage_data": storage}, protocol=4)
    assert blob.count(name.encode()) == 1
    need, walk = _pickle.storage_refs(io.BytesIO(blob), limit=1 << 20)
    assert walk.complete and need == {"__0_0.distcp": 128, "__1_0.distcp": 7}


def test_a_pickle_cut_short_never_completes() -> None:
    blob = pickle.dumps({"storage_data": {"a": {"relative_path": "x", "offset": 0, "length": 1}}})
    _, walk = _pickle.storage_refs(io.BytesIO(blob[: len(blob) // 2]), limit=1 << 20)
    assert walk.truncated and not walk.complete


def test_walking_runs_nothing_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    blob = pickle.dumps({"global_step": 3, "payload": Boom(marker)}, protocol=2)
    found, walk = _pickle.first_ints(io.BytesIO(blob), ("global_step", "missing"), limit=1 << 20)
    assert found == {"global_step": 3} and walk.complete
    assert not marker.exists()


def test_the_walk_stops_at_its_limit() -> None:
    blob = pickle.dumps({"pad": "x" * 5000, "global_step": 9}, protocol=2)
    found, walk = _pickle.first_ints(io.BytesIO(blob), ("global_step",), limit=1000)
    assert found == {} and walk.over_limit
