"""hpresil: resiliency for GPU clusters that run Slurm."""

__version__ = "0.1.0"
