"""Access to Agent Hive: API tokens (model, services, admin, console page), their HTTP
authentication and the API's rate limits. Who may do what is coordination.permissions.
"""
