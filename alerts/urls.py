from django.urls import path

from . import views

urlpatterns = [
    path("alerts/", views.inbox, name="alert-inbox"),
    path("alerts/status/", views.status_fragment, name="alert-status"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert-detail"),
    path("alerts/<int:pk>/acknowledge/", views.acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", views.resolve, name="alert-resolve"),
]
