"""GPU identity from the driver's lines: PCI id -> UUID and board serial.

The line shapes are those of ``_krcLogUuidOnce`` in NVIDIA's kernel_rc.c; the values
in the first test are the recorded ones of tests/fixtures/xid/lines.txt (gpud README).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hpresil.kernlog.identity import GpuIds, IdentityLine, IdentityMap, parse_identity
from hpresil.kernlog.parse import LineParser

AT = datetime(2026, 3, 1, tzinfo=UTC)
UUID = "GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b"


@pytest.mark.parametrize(
    ("message", "found"),
    [
        (f"NVRM: GPU at PCI:0000:91:00: {UUID}", IdentityLine("0000:91:00", uuid=UUID)),
        (
            "NVRM: GPU Board Serial Number: 1653723052734",
            IdentityLine(None, serial="1653723052734"),
        ),
        (
            "NVRM: GPU 0000:91:00.0: GPU serial number is 1653723052734.",
            IdentityLine("0000:91:00", serial="1653723052734"),
        ),
        (
            "NVRM: GPU at PCI:0000:AB:00: GPU-0A1B2C3D-0000",
            IdentityLine("0000:ab:00", uuid="GPU-0A1B2C3D-0000"),
        ),
        ("NVRM: GPU Board Serial Number: [N/A]", None),
        ("NVRM: GPU Board Serial Number: [not supported]", None),
        ("NVRM: GPU Board Serial Number: 0", None),
        ("NVRM: GPU Board Serial Number: ", None),
        ("NVRM: GPU at PCI:0000:9b:00 (printing 1 of every 30).", None),
        ("NVRM: GPU 0000:91:00.0: GPU has fallen off the bus.", None),
    ],
)
def test_identity_lines(message: str, found: IdentityLine | None) -> None:
    assert parse_identity(message) == found


def test_the_serial_line_belongs_to_the_uuid_line_before_it() -> None:
    ids = IdentityMap()
    for message in (
        f"NVRM: GPU at PCI:0000:91:00: {UUID}",
        "NVRM: GPU Board Serial Number: 1653723052734",
        "NVRM: GPU at PCI:0000:18:00: GPU-11111111-2222-3333-4444-555555555555",
        "NVRM: GPU Board Serial Number: [N/A]",
    ):
        ids.feed(message)
    assert ids.snapshot() == {
        "0000:91:00": GpuIds(UUID, "1653723052734"),
        "0000:18:00": GpuIds("GPU-11111111-2222-3333-4444-555555555555", None),
    }


def test_a_serial_line_too_far_from_its_uuid_line_is_not_guessed() -> None:
    ids = IdentityMap(reach=2)
    ids.feed(f"NVRM: GPU at PCI:0000:91:00: {UUID}")
    for _ in range(3):
        ids.feed("NVRM: something else")
    ids.feed("NVRM: GPU Board Serial Number: 1653723052734")
    assert ids.get("0000:91:00") == GpuIds(UUID, None)


def test_a_lone_serial_line_is_ignored_and_one_serial_line_serves_once() -> None:
    ids = IdentityMap()
    ids.feed("NVRM: GPU Board Serial Number: 1653723052734")
    assert ids.snapshot() == {}
    ids.feed(f"NVRM: GPU at PCI:0000:91:00: {UUID}")
    ids.feed("NVRM: GPU Board Serial Number: 111")
    ids.feed("NVRM: GPU Board Serial Number: 222")  # no UUID line before it: ignored
    assert ids.get("0000:91:00") == GpuIds(UUID, "111")


def test_the_serial_after_a_gpu_loss_completes_the_identity() -> None:
    ids = IdentityMap()
    ids.feed(f"NVRM: GPU at PCI:0000:91:00: {UUID}")
    ids.feed("NVRM: GPU 0000:91:00.0: GPU serial number is 1653723052734.")
    assert ids.get("0000:91:00") == GpuIds(UUID, "1653723052734")


def test_line_parser_attributes_xids_without_nvml() -> None:
    """Journald lines, serial line interleaved with another message: still attributed."""
    parser = LineParser()
    lines = [
        f"May 18 19:02:39 gpu7 kernel: NVRM: GPU at PCI:0000:91:00: {UUID}",
        "May 18 19:02:39 gpu7 kernel: mlx5_core 0000:ab:00.0: Port: 1 Link ACTIVE",
        "May 18 19:02:39 gpu7 kernel: NVRM: GPU Board Serial Number: 1653723052734",
        "May 18 19:02:39 gpu7 kernel: NVRM: Xid (PCI:0000:91:00): 48, pid=1, name=a, DBE",
        "May 18 19:02:40 gpu7 kernel: NVRM: Xid (PCI:0000:18:00): 48, pid=1, name=a, DBE",
    ]
    events = [e for line in lines if (e := parser.feed(line, AT))]
    assert [(e.pci_bus_id, e.gpu_uuid, e.gpu_serial) for e in events] == [
        ("0000:91:00", UUID, "1653723052734"),
        ("0000:18:00", None, None),  # no identity line for this GPU
    ]
    assert parser.identities == {"0000:91:00": GpuIds(UUID, "1653723052734")}
