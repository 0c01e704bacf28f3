# Agent concurrency between 1 and 32, enforced by the database.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_initial'),
        ('coordination', '0003_drop_covered_fk_indexes'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='agent',
            name='agent_concurrency_positive',
        ),
        migrations.AddConstraint(
            model_name='agent',
            constraint=models.CheckConstraint(condition=models.Q(('concurrency__gte', 1), ('concurrency__lte', 32)), name='agent_concurrency_within_limits'),
        ),
    ]
