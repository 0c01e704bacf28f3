"""manage.py report: the delivery report as a PDF, CSV or JSON file, for scheduled sending."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from coordination.models import Session
from reports.exports import TABLES, report_csv, report_json
from reports.inputs import PRESETS, parse_period
from reports.pdf import PdfUnavailable
from reports.selectors import delivery_report
from reports.views import report_pdf_bytes


class Command(BaseCommand):
    help = "Write the delivery report for a period (and optionally one session) as a PDF, CSV or JSON file."

    def add_arguments(self, parser):
        parser.add_argument("--session", help="Session id or name (default: all sessions).")
        parser.add_argument("--since", default="7d", help="7d, 30d or a first day YYYY-MM-DD (default 7d).")
        parser.add_argument("--until", help="Last day YYYY-MM-DD, included (with a --since date; default today).")
        parser.add_argument("--format", choices=["pdf", "csv", "json"], default="pdf")
        parser.add_argument("--table", choices=TABLES, default="deliveries", help="Which table a CSV holds.")
        parser.add_argument("--out", required=True, help="File to write ('-' for standard output, CSV and JSON only).")

    def handle(self, *args, **options):
        params = (
            {"period": options["since"]}
            if options["since"] in PRESETS
            else {
                "period": "custom",
                "start": options["since"],
                "end": options["until"] or timezone.localdate().isoformat(),
            }
        )
        if options["until"] and options["since"] in PRESETS:
            raise CommandError("--until goes with a --since date, not with 7d or 30d")
        if options["session"]:
            params["session"] = str(self._session(options["session"]).pk)
        try:
            period = parse_period(params)
        except ValidationError as exc:
            flags = {"start": "--since", "end": "--until", "period": "--since", "session": "--session"}
            raise CommandError(
                "; ".join(
                    f"{flags.get(field, field)}: {' '.join(map(str, errors))}" for field, errors in exc.detail.items()
                )
            ) from exc
        if options["format"] == "pdf":
            if options["out"] == "-":
                raise CommandError("--out: a PDF needs a file name")
            try:
                content: bytes | str = report_pdf_bytes(period)
            except PdfUnavailable as exc:
                raise CommandError(str(exc)) from exc
        elif options["format"] == "csv":
            content = report_csv(delivery_report(period), table=options["table"])
        else:
            content = report_json(delivery_report(period))
        if options["out"] == "-":
            self.stdout.write(content, ending="")
            return
        out = Path(options["out"])
        try:
            out.write_bytes(content) if isinstance(content, bytes) else out.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"--out: cannot write {out}: {exc.strerror}") from exc
        self.stdout.write(f"Wrote the {period.label} report ({options['format']}) to {out}")

    def _session(self, value: str) -> Session:
        session = Session.objects.filter(pk=int(value)).first() if value.isdigit() else None
        session = session or Session.objects.filter(name=value).order_by("-created_at").first()
        if session is None:
            raise CommandError(f"--session: no session with id or name {value!r}")
        return session
