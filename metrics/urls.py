"""Metric endpoints of the JSON API; hive_project.urls mounts them under /api/ beside coordination's."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import AgentPerformanceView, BusinessValueView, CoordinationMetricsView, ValidationRunViewSet

router = SimpleRouter(trailing_slash=False)
router.register("validation-runs", ValidationRunViewSet, basename="validation-run")

api_patterns = [
    path("coordination/metrics", CoordinationMetricsView.as_view(), name="coordination-metrics"),
    path("coordination/business-value", BusinessValueView.as_view(), name="coordination-business-value"),
    path("agents/<str:pk>/performance", AgentPerformanceView.as_view(), name="agent-performance"),
    *router.urls,
]
