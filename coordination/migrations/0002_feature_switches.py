"""The feature switches operators flip in the admin (django-waffle).

require_deploy_approval  off: when on, deploy/CI steps wait for a human Decision (services/flow.py gate_required).
coordination_paused      off: when on, coordinators claim no new work.
autospawn_team           on:  run_coordinator spawns the configured team at start-up.
"""

from django.db import migrations

SWITCHES = [
    ("require_deploy_approval", False, "Deploy and CI steps wait for a human to approve the deploy."),
    ("coordination_paused", False, "Coordinators claim no new work; running work finishes."),
    ("autospawn_team", True, "run_coordinator spawns the configured team at start-up."),
]


def create_switches(apps, schema_editor):
    Switch = apps.get_model("waffle", "Switch")
    for name, active, note in SWITCHES:
        # An operator's existing choice wins over the default.
        Switch.objects.get_or_create(name=name, defaults={"active": active, "note": note})


def remove_switches(apps, schema_editor):
    Switch = apps.get_model("waffle", "Switch")
    Switch.objects.filter(name__in=[name for name, _, _ in SWITCHES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("coordination", "0001_initial"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
    ]

    operations = [migrations.RunPython(create_switches, remove_switches)]
