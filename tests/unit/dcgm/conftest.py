from tests.unit.dcgm.fakes import fake_dcgmi

__all__ = ["fake_dcgmi"]
