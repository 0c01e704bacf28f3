"""Roll up every closed hour of recorded work into MetricHour (the long windows read them).

Reads also roll the hours that closed since the last read, a few at a time; this command
catches up a backlog at once (after an upgrade or a bulk import), or rebuilds from scratch.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from metrics import rollups


class Command(BaseCommand):
    help = __doc__.split("\n\n")[0]

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Forget every rollup and roll all hours again.")

    def handle(self, *args, rebuild: bool = False, **options):
        started = time.monotonic()
        hours = rollups.rebuild() if rebuild else rollups.catch_up()
        mark = rollups.watermark()
        self.stdout.write(
            f"rolled {hours} hour(s) in {time.monotonic() - started:.1f} s; "
            f"rolled through {mark.isoformat() if mark else 'nothing yet'}"
        )
