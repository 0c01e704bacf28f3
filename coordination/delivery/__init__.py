"""The git side of deliveries: the daemon's clone, attempt worktrees, verification and the merge queue's merger.

Plain Python around the git command line (no Django), so it runs in worker threads off the event loop;
the engine fences every side effect here with the database.
"""
