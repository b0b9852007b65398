"""Job resilience on the controller: the job ledger, and what hpresil does to jobs.

``ledger`` records what agents and Slurm say of each job; ``rules`` decides (pure);
``watch`` runs the periodic decisions (hangs, budgets, idle GPUs, resumes); ``blame``
tells a job's fault from a node's; ``notify`` posts the webhook events.
"""
