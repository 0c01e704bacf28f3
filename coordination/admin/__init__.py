"""Operator admin of the crew and its coordination state.

Rows change only through coordination.services: add and change pages save
through a service (so events are written and the API's refusals apply), and
what an operator may do to existing rows (retry, cancel, answer, pause) is
offered as actions that call the services and report per object. The Agent
admin lives here too: agents change only through these services, and the
agents app itself depends on no other app. API tokens and intake sources
register from coordination.access.admin and coordination.intake.admin, with
the same helpers.
"""

from django.contrib import admin

from ..access import admin as access
from ..intake import admin as intake
from . import agents, audit, deliveries, records, sessions, work

admin.site.site_header = "Agent Hive operations"
admin.site.site_title = "Agent Hive admin"
admin.site.index_title = "Crew, coordination and value settings"

__all__ = ["access", "agents", "audit", "deliveries", "intake", "records", "sessions", "work"]
