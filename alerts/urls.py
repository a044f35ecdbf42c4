from django.urls import path

from . import contact_views, views

urlpatterns = [
    path("alerts/", views.inbox, name="alert-inbox"),
    path("alerts/status/", views.status_fragment, name="alert-status"),
    path("alerts/review/", views.review_queue, name="review-queue"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert-detail"),
    path("alerts/<int:pk>/acknowledge/", views.acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", views.resolve, name="alert-resolve"),
    path("alerts/<int:pk>/conclude/", views.conclude, name="alert-conclude"),
    path("me/notifications/", contact_views.my_notifications, name="my-notifications"),
    path("me/notifications/methods/", contact_views.method_add, name="contact-method-add"),
    path("me/notifications/methods/<int:pk>/verify/", contact_views.method_verify, name="contact-method-verify"),
    path("me/notifications/methods/<int:pk>/code/", contact_views.method_code, name="contact-method-code"),
    path("me/notifications/methods/<int:pk>/remove/", contact_views.method_remove, name="contact-method-remove"),
    path("me/notifications/rules/<int:severity>/", contact_views.rule_save, name="notification-rule"),
]
