"""Who may read and who may write."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

OPERATORS_GROUP = "operators"


def is_operator(user) -> bool:
    """Staff, superusers and members of the operators group may change state."""
    if not (user and user.is_authenticated):
        return False
    return user.is_staff or user.is_superuser or user.groups.filter(name=OPERATORS_GROUP).exists()


class IsOperatorOrReadOnly(BasePermission):
    """Any signed-in user reads; only operators write."""

    message = "Changing coordination state needs operator rights."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or is_operator(request.user)
