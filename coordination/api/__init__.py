"""The JSON API: serializers, filters and thin views over coordination services and selectors."""

from coordination.services.agents_api import agent_create, session_transition

__all__ = ["agent_create", "session_transition"]
