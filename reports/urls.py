"""Reports: the console page (namespace "reports") and the JSON/CSV API (mounted under /api/ by hive_project.urls)."""

from django.urls import path

from . import api, views

app_name = "reports"

urlpatterns = [
    path("", views.report, name="page"),
    path("export.csv", views.report_export, {"fmt": "csv"}, name="export_csv"),
    path("export.json", views.report_export, {"fmt": "json"}, name="export_json"),
    path("report.pdf", views.report_pdf, name="pdf"),
]

api_patterns = [
    path("reports/delivery", api.DeliveryReportView.as_view(), name="report-delivery"),
    path("reports/delivery.csv", api.DeliveryReportCsvView.as_view(), name="report-delivery-csv"),
]
