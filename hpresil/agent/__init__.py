"""The node agent: collect a snapshot per tick, run the checks, spool reports to the
controller (:mod:`.service`); fault injection for game days (:mod:`.inject`).

Kept import-light: the Slurm hooks and the CLI import pieces of it.
"""
