from django.contrib import admin
from django.urls import include, path

from coordination import urls_api as coordination_api
from metrics import urls as metrics_api

urlpatterns = [
    path("admin/", admin.site.urls),
    # The JSON API of both apps under one namespace, then health and Prometheus endpoints.
    path("api/", include(([*metrics_api.api_patterns, *coordination_api.api_patterns], "api"))),
    path("", include("coordination.urls_api")),
    # The server-rendered console and its login.
    path("", include("coordination.urls_console")),
    path("", include("hive_project.urls_auth")),
]
