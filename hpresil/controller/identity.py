"""An incident's identity (category, summary, XID, GPU) taken from the fault that
opened it: one place for node incidents and the job incidents blame records."""

from __future__ import annotations

from hpresil.controller.policy import IncidentIdentity
from hpresil.store.models import IncidentRow


def set_identity(incident: IncidentRow, f: IncidentIdentity) -> None:
    incident.category = f.category
    incident.hardware = f.hardware
    incident.summary = f.summary
    incident.xid = f.xid
    incident.observed_at = f.observed_at
    gpu = f.gpu
    incident.gpu_index = gpu.index if gpu else None
    incident.gpu_uuid = gpu.uuid if gpu else None
    incident.gpu_serial = gpu.serial if gpu else None
    incident.gpu_pci = gpu.pci_bus_id if gpu else None
    incident.gpu_name = gpu.name if gpu else None
