"""The dispatcher's writes, one module per job.

- coordinators: register, heartbeat, drain, stop; declare silent daemons dead
- claims: lease ready tasks to free agents (several daemons share one queue)
- leases: renew what a daemon still runs
- results: apply results, fenced on their attempt; retry or escalate
- recovery: reclaim expired or orphaned work, hand back on shutdown (`tasks_release`)
- store: the one place choosing PostgreSQL set-based SQL (sql.py) or the portable ORM

Every operation is set-based: one tick claims or finishes many tasks with a
fixed number of statements. Lock order: see services/locks.py.
"""

from .claims import Claim, tasks_claim
from .coordinators import (
    coordinator_heartbeat,
    coordinator_register,
    coordinator_stop,
    coordinator_stopping,
    coordinators_fair_share,
    coordinators_mark_dead,
)
from .leases import tasks_lease_renew
from .recovery import agents_reclaim_dead, tasks_hand_back, tasks_reclaim_expired, tasks_release
from .results import Finished, task_results_apply, tasks_apply_and_claim

__all__ = [
    "Claim",
    "Finished",
    "agents_reclaim_dead",
    "coordinator_heartbeat",
    "coordinator_register",
    "coordinator_stop",
    "coordinator_stopping",
    "coordinators_fair_share",
    "coordinators_mark_dead",
    "task_results_apply",
    "tasks_apply_and_claim",
    "tasks_claim",
    "tasks_hand_back",
    "tasks_lease_renew",
    "tasks_reclaim_expired",
    "tasks_release",
]
