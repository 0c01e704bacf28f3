from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from coordination.actors import acting
from coordination.exceptions import DomainError
from coordination.management.base import add_actor_argument, command_actor, require_migrated_database
from coordination.services import retention


class Command(BaseCommand):
    help = (
        "Remove coordination events older than a duration, oldest first, optionally archiving them to a "
        "gzip JSON-lines file. Clients whose replay cursor falls below what is kept are told so."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", required=True, metavar="DURATION", help="Age of the events removed: 90d, 12h, 2w or 45m."
        )
        parser.add_argument(
            "--archive", metavar="FILE.jsonl.gz", help="Write the removed events' payloads here first (a new file)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be removed; change nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.BATCH,
            help=f"Events per transaction (default {retention.BATCH}).",
        )
        add_actor_argument(parser)

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        try:
            age = retention.parse_age(options["older_than"])
        except DomainError as exc:
            raise CommandError(f"--older-than: {exc.errors['older_than']}") from exc
        if not 1 <= options["batch_size"] <= retention.BATCH_MAX:
            raise CommandError(f"--batch-size: must be between 1 and {retention.BATCH_MAX}")
        require_migrated_database()
        actor, _ = command_actor(options)
        described = retention.describe_age(age)

        if options["dry_run"]:
            plan = retention.events_prune_plan(older_than=age, batch=options["batch_size"])
            if verbosity:
                if plan.count:
                    self.stdout.write(
                        f"Would prune {plan.count} events older than {described} (created before "
                        f"{plan.cutoff:%Y-%m-%d %H:%M:%S} UTC): ids {plan.first_id}–{plan.last_id}, created "
                        f"{plan.oldest_at:%Y-%m-%d %H:%M} – {plan.newest_at:%Y-%m-%d %H:%M} UTC."
                    )
                else:
                    self.stdout.write(f"No events older than {described}: nothing would be pruned.")
                self.stdout.write(
                    "Dry run: nothing was changed" + (" and no archive written." if options["archive"] else ".")
                )
            return

        def progress(step: retention.PruneStep) -> None:
            if verbosity >= 2 and step.deleted:
                self.stdout.write(f"  pruned {step.deleted} events (through id {step.run.pruned_through_id})")

        try:
            with acting(actor):
                run = retention.events_prune(
                    older_than=age,
                    archive=options["archive"],
                    batch=options["batch_size"],
                    owner=retention.default_owner("prune_events"),
                    on_batch=progress,
                )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if not verbosity:
            return
        if run.deleted:
            archived = f"; archived to {run.archive}" if run.archive else ""
            self.stdout.write(
                self.style.SUCCESS(
                    f"Pruned {run.deleted} events older than {described} (created before "
                    f"{run.cutoff:%Y-%m-%d %H:%M:%S} UTC), through id {run.pruned_through_id}{archived}."
                )
            )
        else:
            self.stdout.write(f"No events older than {described}: nothing pruned.")
            if run.archive:
                self.stdout.write(f"The archive {run.archive} is empty.")
