"""Workflows completed before deliveries were recorded: those without a repository were delivered when they
completed, so their delivered_at is their completed_at (the engine now stamps it at completion)."""

from django.db import migrations
from django.db.models import F


def backfill(apps, schema_editor):
    Workflow = apps.get_model("coordination", "Workflow")
    Workflow.objects.filter(status="completed", delivered_at__isnull=True, session__repository="").update(
        delivered_at=F("completed_at")
    )


class Migration(migrations.Migration):
    dependencies = [("coordination", "0009_task_failures")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
