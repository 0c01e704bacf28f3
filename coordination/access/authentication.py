"""HTTP API authentication with the project's API tokens (`Authorization: Token <secret>`)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions


class HiveTokenAuthentication(TokenAuthentication):
    """knox's header parsing, the project's token rules: revoked, expired and unknown tokens get 401.

    `request.auth` is the ApiToken, so permissions read its scope and attribution its name.
    """

    def authenticate_credentials(self, token: bytes):
        # Imported here: DRF imports this class while rest_framework.views loads, before the services can.
        from .services import TokenRejected, token_authenticate

        try:
            api_token = token_authenticate(secret=token.decode("utf-8", errors="replace"))
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return api_token.user, api_token


class HiveTokenScheme(OpenApiAuthenticationExtension):
    target_class = HiveTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
