from tests.api.conftest import anon_client, fast_passwords, operator_client, operator_token  # noqa: F401
