"""Hashed, named, scoped, expiring API tokens (coordination.ApiToken, a django-rest-knox token).

Tokens of rest_framework.authtoken, which kept the raw key, are moved over: their SHA-512
digest is stored, they keep working until HIVE_TOKEN_TTL_DAYS from the upgrade, and the old
table with the raw keys is dropped.
"""

import sys
from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

PLAIN_TABLE = "authtoken_token"
MOVED_NAME = "API token (moved from plain storage)"


def move_plain_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("coordination", "ApiToken")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {schema_editor.quote_name(PLAIN_TABLE)}")
        rows = cursor.fetchall()
    expiry = timezone.now() + timedelta(days=settings.HIVE_TOKEN_TTL_DAYS)
    operators = set(
        User.objects.filter(
            models.Q(is_staff=True) | models.Q(is_superuser=True) | models.Q(groups__name="operators")
        ).values_list("pk", flat=True)
    )
    for key, user_id, created in rows:
        token = ApiToken(
            digest=hash_token(key),
            token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
            user_id=user_id,
            name=MOVED_NAME,
            # A plain token carried all of its user's rights; the scope keeps that, no more.
            scope="operate" if user_id in operators else "read",
            expiry=expiry,
        )
        token.save(force_insert=True)
        ApiToken.objects.filter(pk=token.pk).update(created=created)  # auto_now_add set it to now
    schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(PLAIN_TABLE)}")
    # rest_framework.authtoken is no longer installed; forget its history with its table.
    schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])
    if rows:
        sys.stdout.write(
            f"\n  Moved {len(rows)} API token(s) to hashed storage; they keep working until "
            f"{expiry:%Y-%m-%d} (HIVE_TOKEN_TTL_DAYS). The table of raw keys ({PLAIN_TABLE}) was dropped.\n"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('coordination', '0004_intake_and_event_retention'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('digest', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('expiry', models.DateTimeField(blank=True, null=True)),
                ('token_key', models.CharField(max_length=25)),
                ('name', models.CharField(help_text='What the token is for, e.g. “CI bot” or “phone”.', max_length=100)),
                ('scope', models.CharField(choices=[('read', 'Read'), ('operate', 'Operate (read and write)')], default='read', max_length=16)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('revoked_by', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('user', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='auth_token_set', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created'],
                'indexes': [models.Index(fields=['token_key'], name='apitoken_key_idx'), models.Index(fields=['user', '-created'], name='apitoken_user_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('scope__in', ['read', 'operate'])), name='apitoken_scope_valid'), models.CheckConstraint(condition=models.Q(('expiry__isnull', False)), name='apitoken_expires')],
            },
        ),
        migrations.RunPython(move_plain_tokens, migrations.RunPython.noop),
    ]
