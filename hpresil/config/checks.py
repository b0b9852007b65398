"""Settings of the GPU checks: ``[checks.<area>]`` (the checks live in :mod:`hpresil.checks`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EccConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dram_corrected_max: int = Field(default=20_000_000, ge=0)
    sram_corrected_max: int = Field(default=10_000, ge=0)
    require_enabled: bool = True


class RowRemapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uncorrectable_warn: int = Field(default=512, ge=1)


class RetiredPagesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retired: int = Field(default=63, ge=1)


class TemperatureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_margin_c: int = Field(default=5, ge=0)
    gpu_max_c: int | None = None  # used when the GPU does not report its own
    mem_max_c: int | None = None


WATCHED = ("hw_slowdown", "hw_thermal", "hw_power_brake")


class ClockEventsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(default=600.0, gt=0, le=900)  # GpuHistoryRecorder keeps 900 s
    max_events_per_min: float = Field(default=0.6, gt=0)
    reasons: tuple[str, ...] = WATCHED


class PowerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    over_limit_pct: float = Field(default=5.0, ge=0)


class PcieConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_width: int | None = Field(default=None, ge=1)  # None: the link's maximum
    busy_util_pct: int = Field(default=50, ge=0, le=100)
    replay_window_s: float = Field(default=60.0, gt=0, le=900)
    replays_per_min_gen5: float = Field(default=31.0, ge=0)
    replays_per_min: float = Field(default=16.0, ge=0)  # below Gen5


class NvlinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expected_links: int | None = Field(default=None, ge=0)  # e.g. 18 on HGX H100
    window_s: float = Field(default=60.0, gt=0, le=900)
    max_crc_per_s: float = Field(default=100.0, gt=0)
