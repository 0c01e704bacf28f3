"""Who may read and who may write, and who is acting.

Rights come from the user (staff, superusers and the operators group write; everyone
signed in reads), narrowed by the credential: a read-scoped API token never writes,
whoever owns it. Sessions carry no scope.
"""

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

OPERATORS_GROUP = "operators"
OPERATOR_MESSAGE = "Changing coordination state needs operator rights."
READ_SCOPE_MESSAGE = "This token is read-only (scope read); writes need a token with scope operate."


def is_operator(user) -> bool:
    """Staff, superusers and members of the operators group may change state."""
    if not (user and user.is_authenticated):
        return False
    return user.is_staff or user.is_superuser or user.groups.filter(name=OPERATORS_GROUP).exists()


def credential_allows_write(auth) -> bool:
    """False for a read-scoped API token; sessions (auth None) and operate tokens pass."""
    allows = getattr(auth, "allows_write", None)
    return True if allows is None else bool(allows)


def write_refusal(user, auth=None) -> str | None:
    """Why this user with this credential may not change state, or None when they may."""
    if not is_operator(user):
        return OPERATOR_MESSAGE
    if not credential_allows_write(auth):
        return READ_SCOPE_MESSAGE
    return None


def actor_label(user, auth=None) -> str:
    """Who is acting, for the record: the user name, and the token's name when one is used.

    `request.user` with `request.auth` (HTTP) or the socket scope's "user" and "token"
    give the same label, so attribution reads it from either.
    """
    if not (user and user.is_authenticated):
        return ""
    token_name = getattr(auth, "name", "")
    return f"{user.get_username()} (token “{token_name}”)" if token_name else user.get_username()


class IsOperatorOrReadOnly(BasePermission):
    """Any signed-in user reads; only operators write, and never with a read-scoped token."""

    message = OPERATOR_MESSAGE

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        refusal = write_refusal(request.user, request.auth)
        if refusal:
            raise PermissionDenied(refusal)
        return True
