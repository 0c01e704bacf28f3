"""Page sizes of the list endpoints (kept apart from the views: settings import it early).

`limit` and `offset` are checked as the published schema describes them: a value
that is not a whole number in range is a 400 naming the parameter, never
silently replaced by the default.
"""

from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination


def _whole_number(request, name: str, *, minimum: int, maximum: int | None, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= (maximum or int(raw)):
        limit = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
        raise exceptions.ValidationError({name: [f"must be a whole number {limit}"]})
    return int(raw)


class HivePagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request):
        return _whole_number(
            request, self.limit_query_param, minimum=1, maximum=self.max_limit, default=self.default_limit
        )

    def get_offset(self, request):
        return _whole_number(request, self.offset_query_param, minimum=0, maximum=None, default=0)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_limit, "default": self.default_limit})
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update({"minimum": 0, "default": 0})
        return parameters
