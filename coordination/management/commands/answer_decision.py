"""Answer an open decision from the command line, as an operator (`--as USER`)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from coordination.actors import acting
from coordination.exceptions import DomainError
from coordination.inputs import DecisionAnswerInputSerializer, validate_input
from coordination.management.base import add_actor_argument, command_actor, refusal, require_migrated_database
from coordination.models import Decision
from coordination.services import decision_answer


class Command(BaseCommand):
    help = "Answer an open decision with one of its options; the task waiting on it moves on."

    def add_arguments(self, parser):
        parser.add_argument("decision", type=int, help="The decision's id (the console and GET /api/decisions).")
        parser.add_argument("option", help="The key of one of the decision's options.")
        parser.add_argument("--comment", default="", help="Why, for the record.")
        add_actor_argument(parser)

    def handle(self, *args, decision: int, option: str, comment: str, **options):
        require_migrated_database()
        actor, user = command_actor(options)
        found = Decision.objects.filter(pk=decision).first()
        if found is None:
            raise CommandError(f"no decision with id {decision}")
        try:
            data = validate_input(DecisionAnswerInputSerializer, {"option": option, "comment": comment})
            with acting(actor):
                answered = decision_answer(decision=found, option=data["option"], comment=data["comment"], user=user)
        except DomainError as exc:
            raise refusal(exc) from None
        self.stdout.write(self.style.SUCCESS(f"Decision {answered.pk} answered: {answered.answer} (as {actor})"))
