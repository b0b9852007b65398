"""Parse ``nvidia-smi -q -x`` into GpuSamples (pure; no I/O).

Covers the XML schemas seen in real outputs (DTD v11 to v13, drivers 515 to 590):
``clocks_throttle_reasons`` (before 535) and ``clocks_event_reasons``; ECC counts as
``sram_*``/``dram_*`` (with ``sram_uncorrectable`` split into parity and SECDED from
driver 550) or, older, ``single_bit``/``double_bit`` totals; ``power_readings`` or
``gpu_power_readings`` (``power_draw``, else ``instant_power_draw``).

Temperature thresholds come in two forms. Absolute (``gpu_temp_max_threshold``,
``gpu_temp_slow_threshold``, ``gpu_temp_max_gpu_threshold``,
``gpu_temp_max_mem_threshold``: A100, T4, P100, A10G, and Hopper on 525), or relative
to T.Limit (``gpu_temp_tlimit`` is the GPU's current margin;
``gpu_temp_max_tlimit_threshold``, ``gpu_temp_slow_tlimit_threshold``,
``gpu_temp_max_gpu_tlimit_threshold``, ``gpu_temp_max_mem_tlimit_threshold``: Ada,
Hopper on 545 and later, Blackwell). The GPU's relative thresholds are turned into
absolute ones as current temperature + margin - threshold. That sum moves with load
(real H100 recordings: 41 + 46 = 87 idle, 59 + 26 = 85 busy), but comparing the GPU's
own temperature with it is exactly comparing the margin with the threshold. The
memory's T.Limit threshold is relative to the memory's own limit, which ``-q -x`` does
not print: the memory maximum is read only from the absolute
``gpu_temp_max_mem_threshold`` (HBM2e/HBM3: 95 C), never from the GPU's margin.

``N/A``, ``Not Supported`` and "deprecated" are unsupported (None); ``Unknown Error``
and the like are recorded in the sample's ``error``. A serial of zeros (cloud VMs:
AWS A10G, T4) is no serial. The fabric cluster UUID is written as NVML's backend
writes it, ``str(uuid.UUID(bytes=raw))``; all zeros is none. The XML has no NVLink
section: ``nvlink`` is None. GPU indices are the documents' order (nvidia-smi, like
NVML, enumerates by PCI address). Fixtures and sources: tests/fixtures/gpu/SOURCES.md.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from hpresil.errors import GpuError
from hpresil.vocab import GpuIdentity
from hpresil.vocab.gpu import (
    ClockCounters,
    ClockEvents,
    ClockReason,
    EccCounts,
    EccInfo,
    Fabric,
    FabricState,
    GpuSample,
    Pcie,
    Power,
    RecoveryAction,
    RetiredPages,
    RowRemap,
    Thermal,
    board_serial,
    normalize_bus_id,
)

T = TypeVar("T")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")
_UNSUPPORTED = ("n/a", "not supported", "[n/a]", "[not supported]", "none", "")
_REASONS = {
    "gpu_idle": ClockReason.GPU_IDLE,
    "applications_clocks_setting": ClockReason.APPLICATIONS_CLOCKS,
    "sw_power_cap": ClockReason.SW_POWER_CAP,
    "hw_slowdown": ClockReason.HW_SLOWDOWN,
    "sync_boost": ClockReason.SYNC_BOOST,
    "sw_thermal_slowdown": ClockReason.SW_THERMAL,
    "hw_thermal_slowdown": ClockReason.HW_THERMAL,
    "hw_power_brake_slowdown": ClockReason.HW_POWER_BRAKE,
    "display_clocks_setting": ClockReason.DISPLAY_CLOCKS,
}
_FABRIC = {
    "not started": FabricState.NOT_STARTED,
    "in progress": FabricState.IN_PROGRESS,
    "completed": FabricState.COMPLETED,
}
_RECOVERY = (  # most specific first
    ("drain and reset", RecoveryAction.DRAIN_AND_RESET),
    ("drain", RecoveryAction.DRAIN_P2P),
    ("imex", RecoveryAction.RECOVER_IMEX_DOMAIN),
    ("bus reset", RecoveryAction.BUS_RESET),
    ("system reboot", RecoveryAction.SYSTEM_REBOOT),
    ("reboot", RecoveryAction.NODE_REBOOT),
    ("reset", RecoveryAction.GPU_RESET),
)


def parse_smi_xml(text: str) -> list[GpuSample]:
    """Every ``<gpu>`` of an ``nvidia-smi -q -x`` document. Raises GpuError when the
    text is not such a document."""
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise GpuError(f"nvidia-smi XML not readable: {exc}") from None
    if root.tag != "nvidia_smi_log":
        raise GpuError(f"nvidia-smi XML: unexpected root element <{root.tag}>")
    return [_GpuXml(gpu).sample(index) for index, gpu in enumerate(root.findall("gpu"))]


class _GpuXml:
    """One ``<gpu>`` element; collects the values it could not read."""

    def __init__(self, gpu: ET.Element) -> None:
        self.gpu = gpu
        self.errors: list[str] = []

    def text(self, path: str) -> str | None:
        """The element's text; None when absent or unsupported."""
        node = self.gpu.find(path)
        if node is None or node.text is None:
            return None
        value = node.text.strip()
        low = value.lower()
        if low in _UNSUPPORTED or "deprecated" in low or "not supported" in low:
            return None
        if "error" in low or "lost" in low or "requires reset" in low:
            self.errors.append(f"{path}: {value}")
            return None
        return value

    def num(self, path: str) -> float | None:
        value = self.text(path)
        m = _NUMBER.match(value) if value is not None else None
        return float(m.group(1)) if m else None

    def integer(self, path: str) -> int | None:
        value = self.num(path)
        return None if value is None else int(value)

    def flag(self, path: str, yes: str = "yes", no: str = "no") -> bool | None:
        value = (self.text(path) or "").lower()
        return True if value == yes else False if value == no else None

    def first(self, *getters: Callable[[], T | None]) -> T | None:
        for get in getters:
            value = get()
            if value is not None:
                return value
        return None

    def sample(self, index: int) -> GpuSample:
        ecc = self.ecc()
        sample = GpuSample(
            identity=self.identity(index),
            temperature_c=self.integer("temperature/gpu_temp"),
            utilization_pct=self.integer("utilization/gpu_util"),
            ecc=ecc,
            row_remap=self.row_remap(),
            retired_pages=self.retired_pages(),
            thermal=self.thermal(),
            clock_events=self.clock_events(),
            power=self.power(),
            pcie=self.pcie(),
            fabric=self.fabric(),
            recovery_action=self.recovery_action(),
        )
        if self.errors:
            return replace(sample, error="; ".join(self.errors)[:500])
        return sample

    def identity(self, index: int) -> GpuIdentity:
        bus = self.gpu.get("id") or self.text("pci/pci_bus_id") or ""
        return GpuIdentity(
            index=index,
            uuid=self.text("uuid"),
            serial=board_serial(self.text("serial")),
            pci_bus_id=normalize_bus_id(bus),
            name=self.text("product_name"),
        )

    def ecc(self) -> EccInfo | None:
        info = EccInfo(
            enabled=self.flag("ecc_mode/current_ecc", "enabled", "disabled"),
            pending_enabled=self.flag("ecc_mode/pending_ecc", "enabled", "disabled"),
            volatile=self.ecc_counts("ecc_errors/volatile"),
            aggregate=self.ecc_counts("ecc_errors/aggregate"),
            sram_threshold_exceeded=self.flag("ecc_errors/aggregate/sram_threshold_exceeded"),
        )
        return None if info == EccInfo() else info

    def ecc_counts(self, path: str) -> EccCounts | None:
        sram_unc = _sum(
            self.integer(f"{path}/sram_uncorrectable"),
            self.integer(f"{path}/sram_uncorrectable_parity"),
            self.integer(f"{path}/sram_uncorrectable_secded"),
        )
        dram_corr, sram_corr = (
            self.integer(f"{path}/dram_correctable"),
            self.integer(f"{path}/sram_correctable"),
        )
        dram_unc = self.integer(f"{path}/dram_uncorrectable")
        counts = EccCounts(
            corrected=self.first(
                lambda: _sum(dram_corr, sram_corr), lambda: self.integer(f"{path}/single_bit/total")
            ),
            uncorrected=self.first(
                lambda: _sum(dram_unc, sram_unc), lambda: self.integer(f"{path}/double_bit/total")
            ),
            dram_corrected=dram_corr,
            dram_uncorrected=dram_unc,
            sram_corrected=sram_corr,
            sram_uncorrected=sram_unc,
        )
        return None if counts == EccCounts() else counts

    def row_remap(self) -> RowRemap | None:
        corr, unc = (
            self.integer("remapped_rows/remapped_row_corr"),
            self.integer("remapped_rows/remapped_row_unc"),
        )
        pending = self.flag("remapped_rows/remapped_row_pending")
        failure = self.flag("remapped_rows/remapped_row_failure")
        if corr is None or unc is None or pending is None or failure is None:
            return None
        return RowRemap(correctable=corr, uncorrectable=unc, pending=pending, failure=failure)

    def retired_pages(self) -> RetiredPages | None:
        base = "retired_pages"
        sbe = self.integer(f"{base}/multiple_single_bit_retirement/retired_count")
        dbe = self.integer(f"{base}/double_bit_retirement/retired_count")
        pending = self.first(
            lambda: self.flag(f"{base}/pending_retirement"),
            lambda: self.flag(f"{base}/pending_blacklist"),
        )
        if sbe is None or dbe is None or pending is None:
            return None
        return RetiredPages(single_bit=sbe, double_bit=dbe, pending=pending)

    def thermal(self) -> Thermal | None:
        t = "temperature"
        thermal = Thermal(
            memory_c=self.integer(f"{t}/memory_temp"),
            shutdown_c=self.threshold("gpu_temp_max_threshold", "gpu_temp_max_tlimit_threshold"),
            slowdown_c=self.threshold("gpu_temp_slow_threshold", "gpu_temp_slow_tlimit_threshold"),
            gpu_max_c=self.threshold(
                "gpu_temp_max_gpu_threshold", "gpu_temp_max_gpu_tlimit_threshold"
            ),
            # only the memory's own limit: its T.Limit form is relative to a limit
            # the XML does not print, and the GPU's margin says nothing about it
            mem_max_c=self.integer(f"{t}/gpu_temp_max_mem_threshold"),
        )
        return None if thermal == Thermal() else thermal

    def threshold(self, absolute: str, relative: str) -> int | None:
        """A GPU threshold, absolute, or derived from its T.Limit-relative form: the
        GPU's current margin is ``gpu_temp_tlimit``; the threshold is crossed when the
        margin falls to the relative value."""
        value = self.integer(f"temperature/{absolute}")
        if value is not None:
            return value
        rel, temp = self.integer(f"temperature/{relative}"), self.integer("temperature/gpu_temp")
        margin = self.integer("temperature/gpu_temp_tlimit")
        if rel is None or temp is None or margin is None:
            return None
        return temp + margin - rel

    def clock_events(self) -> ClockEvents | None:
        node = self.gpu.find("clocks_event_reasons")
        if node is None:
            node = self.gpu.find("clocks_throttle_reasons")
        if node is None:
            return None
        mask, seen = 0, False
        for child in node:
            name = re.sub(r"^clocks_(?:event|throttle)_reason_", "", child.tag)
            state = (child.text or "").strip().lower()
            if name in _REASONS and state in ("active", "not active"):
                seen = True
                mask |= _REASONS[name] if state == "active" else 0
        if not seen:
            return None
        return ClockEvents(reasons=int(mask), counters=self.clock_counters())

    def clock_counters(self) -> ClockCounters | None:
        base = "clocks_event_reasons_counters/clocks_event_reasons_counters_"
        counters = ClockCounters(
            sw_power_cap_us=self.integer(base + "sw_power_cap"),
            sync_boost_us=self.integer(base + "sync_boost"),
            sw_thermal_us=self.integer(base + "sw_therm_slowdown"),
            hw_thermal_us=self.integer(base + "hw_therm_slowdown"),
            hw_power_brake_us=self.integer(base + "hw_power_brake"),
        )
        return None if counters == ClockCounters() else counters

    def power(self) -> Power | None:
        p = (
            "gpu_power_readings"
            if self.gpu.find("gpu_power_readings") is not None
            else "power_readings"
        )
        power = Power(
            draw_w=self.first(
                lambda: self.num(f"{p}/power_draw"),
                lambda: self.num(f"{p}/instant_power_draw"),
                lambda: self.num(f"{p}/average_power_draw"),
            ),
            limit_w=self.first(
                lambda: self.num(f"{p}/enforced_power_limit"),
                lambda: self.num(f"{p}/current_power_limit"),
            ),
        )
        return None if power == Power() else power

    def pcie(self) -> Pcie | None:
        link = "pci/pci_gpu_link_info"
        pcie = Pcie(
            gen=self.integer(f"{link}/pcie_gen/current_link_gen"),
            max_gen=self.integer(f"{link}/pcie_gen/max_link_gen"),
            width=self.integer(f"{link}/link_widths/current_link_width"),
            max_width=self.integer(f"{link}/link_widths/max_link_width"),
            replays=self.integer("pci/replay_counter"),
        )
        return None if pcie == Pcie() else pcie

    def fabric(self) -> Fabric | None:
        state = _FABRIC.get((self.text("fabric/state") or "").lower())
        if state is None:  # N/A, Not Supported: not a fabric-managed GPU
            return None
        node = self.gpu.find("fabric/status")
        status = (node.text or "").strip() if node is not None else ""
        return Fabric(
            state=state,
            status=None if status.lower() in _UNSUPPORTED else status.lower(),
            clique_id=self.integer("fabric/cliqueId"),
            cluster_uuid=self.cluster_uuid(),
        )

    def cluster_uuid(self) -> str | None:
        """``fabric/clusterUuid`` in the canonical lower-case 8-4-4-4-12 form (as
        ``str(uuid.UUID(bytes=raw))``, the NVML backend's); all zeros means no cluster."""
        value = self.text("fabric/clusterUuid")
        if value is None:
            return None
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            self.errors.append(f"fabric/clusterUuid: not a UUID {value!r}")
            return None
        return None if parsed.int == 0 else str(parsed)

    def recovery_action(self) -> int | None:
        node = self.gpu.find("gpu_recovery_action")
        value = (node.text or "").strip().lower() if node is not None else ""
        if value == "none":
            return int(RecoveryAction.NONE)
        found = next((code for key, code in _RECOVERY if key in value), None)
        if found is None and value not in ("", "n/a"):
            self.errors.append(f"gpu_recovery_action: unknown value {value!r}")
        return None if found is None else int(found)


def _sum(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
