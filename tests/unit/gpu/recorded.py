"""GpuSamples back from the JSON that ``samples_to_json`` writes (the ``*.json`` files of
scripts/record-gpu-fixture). Production only writes recordings; tests read them back."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import Enum
from typing import Any

from hpresil.vocab import GpuIdentity, gpu
from hpresil.vocab.gpu import GpuSample


def samples_from_json(text: str) -> list[GpuSample]:
    return [_build(GpuSample, item) for item in json.loads(text)]


def _build(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _build(inner[0], value)
    if origin is tuple:
        return tuple(_build(typing.get_args(kind)[0], v) for v in value)
    if kind is GpuIdentity:
        return GpuIdentity.model_validate(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind, vars(gpu) | {"GpuIdentity": GpuIdentity})
        return kind(**{name: _build(hints[name], v) for name, v in value.items()})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    return value
