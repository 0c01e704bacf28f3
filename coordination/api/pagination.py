"""Page sizes of the list endpoints (kept apart from the views: settings import it early)."""

from rest_framework.pagination import LimitOffsetPagination


class HivePagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
