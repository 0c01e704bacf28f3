from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # JSON API, schema, health and Prometheus endpoints.
    path("", include("coordination.urls_api")),
    # The server-rendered console and its login.
    path("", include("coordination.urls_console")),
    path("", include("hive_project.urls_auth")),
]
