"""The clinic report, under /reports/ (physicians and clinic admins)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="reports"),
    path("definitions/", views.definitions, name="report-definitions"),
    path("<int:clinic_id>/", views.report_page, name="report"),
    path("<int:clinic_id>/figures.csv", views.figures_csv, name="report-figures-csv"),
    path("<int:clinic_id>/trends.csv", views.trends_csv, name="report-trends-csv"),
]
