from django.contrib import admin
from django.urls import include, path

from coordination import urls_api as coordination_api
from hive_project import site_files
from metrics import urls as metrics_api
from reports import urls as reports_urls

API_PATTERNS = [*metrics_api.api_patterns, *reports_urls.api_patterns, *coordination_api.api_patterns]

handler404 = "hive_project.site_files.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", site_files.favicon, name="favicon"),
    # The JSON API of the apps under one namespace, then health and Prometheus endpoints.
    path("api/", include((API_PATTERNS, "api"))),
    path("", include("coordination.urls_api")),
    # The server-rendered console and its login.
    path("reports/", include(reports_urls)),
    path("", include("coordination.urls_console")),
    path("", include("hive_project.urls_auth")),
]
