"""Service facts: are the daemons a node needs running?

By process name through psutil, which works with or without systemd (the lab runs
slurmd and munged without it). Optionally also ``systemctl is-active`` on their units
when systemd runs the host, which tells a failed unit from one never started.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hpresil.adapters.proc import run
from hpresil.config.host import ServicesConfig
from hpresil.errors import CommandError
from hpresil.host.procs import ZOMBIE, ProcessLister, list_processes

UnitStates = Callable[[Sequence[str], float], Mapping[str, str]]


@dataclass(frozen=True)
class ServiceState:
    name: str  # process name
    pids: tuple[int, ...] = ()
    unit: str | None = None
    unit_state: str | None = None  # "active", "failed", "inactive", ...; None: not asked


@dataclass(frozen=True)
class ServiceFacts:
    services: tuple[ServiceState, ...] = ()
    systemd_error: str | None = None  # systemctl could not be asked


def systemd_booted() -> bool:
    """Whether systemd runs this host (its ``sd_booted()`` test)."""
    return os.path.isdir("/run/systemd/system")


def unit_states(units: Sequence[str], timeout: float) -> dict[str, str]:
    """``systemctl is-active`` for each unit (one answer per line, in order)."""
    done = run(["systemctl", "is-active", "--", *units], timeout=timeout, check=False)
    answers = done.stdout.split()
    if len(answers) != len(units):
        raise CommandError(done.argv, done.returncode, done.stdout, done.stderr)
    return dict(zip(units, answers, strict=True))


class ServicesSource:
    name = "services"
    kind = ServiceFacts

    def __init__(
        self,
        config: ServicesConfig | None = None,
        *,
        list_processes: ProcessLister = list_processes,
        booted: Callable[[], bool] = systemd_booted,
        unit_states: UnitStates = unit_states,
    ) -> None:
        self._cfg = config or ServicesConfig()
        self.timeout_s = self._cfg.systemctl_timeout_s + 5.0
        self._list = list_processes
        self._booted = booted
        self._unit_states = unit_states

    def collect(self) -> ServiceFacts:
        wanted = self._cfg.required
        pids: dict[str, list[int]] = {name: [] for name in wanted}
        for proc in self._list():
            if proc.name in pids and proc.status != ZOMBIE:
                pids[proc.name].append(proc.pid)
        states, error = self._units()
        services = tuple(
            ServiceState(
                name=name,
                pids=tuple(sorted(pids[name])),
                unit=self._cfg.unit(name) if states else None,
                unit_state=states.get(self._cfg.unit(name)),
            )
            for name in wanted
        )
        return ServiceFacts(services, error)

    def _units(self) -> tuple[Mapping[str, str], str | None]:
        if not (self._cfg.use_systemd and self._cfg.required and self._booted()):
            return {}, None
        units = [self._cfg.unit(name) for name in self._cfg.required]
        try:
            return self._unit_states(units, self._cfg.systemctl_timeout_s), None
        except CommandError as exc:
            return {}, str(exc)
