from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from coordination.actors import acting
from coordination.exceptions import DomainError
from coordination.management.base import add_actor_argument, command_actor, refusal, require_migrated_database
from coordination.models import Session
from coordination.patterns import PATTERNS
from coordination.services import WorkSpec, work_submit


class Command(BaseCommand):
    help = "Submit a piece of work to a session; the coordinator picks it up within a second."

    def add_arguments(self, parser):
        parser.add_argument("title")
        parser.add_argument("--session", required=True, help="Session id or exact name.")
        parser.add_argument("--description", default="")
        parser.add_argument("--pattern", default="feature_delivery", choices=sorted(PATTERNS))
        parser.add_argument("--priority", type=int, default=0)
        parser.add_argument("--estimate", default=None, help="Human hours the work would take (value metrics).")
        parser.add_argument("--file", action="append", default=[], dest="files", help="A file the work touches.")
        add_actor_argument(parser)

    def handle(self, *args, **options):
        require_migrated_database()
        actor, user = command_actor(options)
        ref = options["session"]
        if "\x00" in ref:
            raise CommandError("--session: must not contain NUL characters")
        session = Session.objects.filter(pk=int(ref)).first() if ref.isascii() and ref.isdigit() else None
        session = session or Session.objects.filter(name=ref).order_by("-created_at").first()
        if session is None:
            raise CommandError(f"no session with id or name {ref!r}")
        work = WorkSpec(
            title=options["title"],
            description=options["description"],
            pattern=options["pattern"],
            priority=options["priority"],
            estimate_hours=options["estimate"],
            files=options["files"],
        )
        try:
            with acting(actor):
                workflow = work_submit(session=session, work=work, user=user)
        except DomainError as exc:
            raise refusal(exc) from None
        self.stdout.write(self.style.SUCCESS(f"Workflow {workflow.pk} “{workflow.title}” submitted to {session.name}"))
