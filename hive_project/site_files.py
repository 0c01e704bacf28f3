"""Site-wide answers outside the apps: the favicon browsers ask for, and 404s under /api/ in the API's error shape."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found

FAVICON = Path(settings.BASE_DIR) / "static" / "icons" / "favicon.ico"


@require_GET
def favicon(request: HttpRequest) -> FileResponse:
    response = FileResponse(FAVICON.open("rb"), content_type="image/vnd.microsoft.icon")
    response["Cache-Control"] = "max-age=86400"
    return response


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """JSON `{detail, code, errors}` for an unknown /api/ path; the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found", "errors": {}}, status=404)
    return page_not_found(request, exception)
