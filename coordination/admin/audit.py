"""The admin's own log (LogEntry) mirrored into the event stream, so there is one audit trail."""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from ..services.audit import admin_entry_record


@receiver(post_save, sender=LogEntry, dispatch_uid="coordination.admin_log_mirror")
def admin_log_mirror(sender, instance: LogEntry, created: bool, raw: bool = False, **kwargs) -> None:
    """Each new admin log entry becomes an admin_action event in the same transaction."""
    if created and not raw:
        admin_entry_record(entry=instance)


def admin_log_mirror_bulk(entries) -> None:
    """Entries the admin wrote with bulk_create (a deletion of several rows), which sends no post_save."""
    entries = list(entries or [])
    if len(entries) > 1:
        for entry in entries:
            admin_entry_record(entry=entry)
