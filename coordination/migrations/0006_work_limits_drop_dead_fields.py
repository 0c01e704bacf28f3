# Limits of submitted work as constraints; drop Task.depends_on and the unused pending status.

from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0003_agent_concurrency_limits'),
        ('coordination', '0005_api_tokens'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='task',
            name='task_estimate_non_negative',
        ),
        migrations.RemoveConstraint(
            model_name='workflow',
            name='workflow_estimate_non_negative',
        ),
        migrations.RemoveField(
            model_name='task',
            name='depends_on',
        ),
        migrations.AlterField(
            model_name='task',
            name='status',
            field=models.CharField(choices=[('ready', 'Ready'), ('running', 'Running'), ('blocked', 'Blocked on a decision'), ('completed', 'Completed'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='ready', max_length=16),
        ),
        migrations.AddConstraint(
            model_name='task',
            constraint=models.CheckConstraint(condition=models.Q(('human_estimate_hours__gte', 0), ('human_estimate_hours__lte', Decimal('10000'))), name='task_estimate_within_limits'),
        ),
        migrations.AddConstraint(
            model_name='task',
            constraint=models.CheckConstraint(condition=models.Q(('priority__gte', -100), ('priority__lte', 100)), name='task_priority_within_limits'),
        ),
        migrations.AddConstraint(
            model_name='workflow',
            constraint=models.CheckConstraint(condition=models.Q(('human_estimate_hours__gte', 0), ('human_estimate_hours__lte', Decimal('10000'))), name='workflow_estimate_within_limits'),
        ),
        migrations.AddConstraint(
            model_name='workflow',
            constraint=models.CheckConstraint(condition=models.Q(('priority__gte', -100), ('priority__lte', 100)), name='workflow_priority_within_limits'),
        ),
    ]
