"""GpuSamples to JSON, for recorded fixtures (scripts/record-gpu-fixture)."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Any

from hpresil.vocab import GpuIdentity
from hpresil.vocab.gpu import GpuSample


def samples_to_json(samples: list[GpuSample]) -> str:
    return json.dumps([_plain(s) for s in samples], indent=2, sort_keys=True) + "\n"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, GpuIdentity):
        return value.model_dump()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
