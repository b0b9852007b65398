"""The ``hpresil`` command line: one module per command group, one error boundary."""
