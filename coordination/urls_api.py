"""Coordination's JSON API, its OpenAPI schema and docs, health checks and the Prometheus endpoint.

hive_project.urls mounts `api_patterns` under /api/ together with the metrics app's.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from .api import deliveries, health, views
from .intake.api import IntakeView

router = SimpleRouter(trailing_slash=False)
router.register("agents", views.AgentViewSet, basename="agent")
router.register("sessions", views.SessionViewSet, basename="session")
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("tasks", views.TaskViewSet, basename="task")
router.register("decisions", views.DecisionViewSet, basename="decision")

api_patterns = [
    path("coordination/status", views.CoordinationStatusView.as_view(), name="coordination-status"),
    path("coordination/spawn", views.CoordinationSpawnView.as_view(), name="coordination-spawn"),
    path("events", views.EventListView.as_view(), name="events"),
    path("workflows/<str:pk>/diff", deliveries.WorkflowDiffView.as_view(), name="workflow-diff"),
    path(
        "workflows/<str:pk>/verification-runs",
        deliveries.WorkflowVerificationRunsView.as_view(),
        name="workflow-verification-runs",
    ),
    path("sessions/<str:pk>/merge-queue", deliveries.SessionMergeQueueView.as_view(), name="session-merge-queue"),
    # Any segment reaches the view, so an unknown or malformed slug is a JSON 404 like a missing one.
    path("intake/<str:slug>", IntakeView.as_view(), name="intake"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *router.urls,
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.PrometheusMetricsView.as_view(), name="prometheus-metrics"),
]
