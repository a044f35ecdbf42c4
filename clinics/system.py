"""The system user: the actor history records for tasks and management commands."""

from django.conf import settings
from django.contrib.auth import get_user_model


def get_system_user():
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=settings.SYSTEM_USERNAME,
        defaults={"first_name": "ITB Tracker", "last_name": "(system)", "is_active": False},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
