"""Session records on sign-in and sign-out; deactivation ends every session and API token."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from rest_framework.request import Request

from clinics.models import Membership

from . import sessions
from .models import TemporaryPassword

PASSWORD_CHANGE_KEY = "itb_password_change_required"


@receiver(user_logged_in)
def record_session(sender, request, user, **kwargs):
    # Only browser sign-ins: the API token endpoint (knox) sends this signal too, without a session.
    if isinstance(request, Request) or not hasattr(request, "session") or not request.session.session_key:
        return
    device = getattr(user, "otp_device", None)
    from .services import describe_factor

    sessions.record_sign_in(request, user, second_factor=describe_factor(device) if device else "")
    if TemporaryPassword.objects.filter(user=user).exists():
        request.session[PASSWORD_CHANGE_KEY] = True


@receiver(user_logged_out)
def end_session_record(sender, request, user, **kwargs):
    if request is not None and user is not None:
        sessions.signed_out(request, user)


def _was_active(sender, instance, update_fields) -> bool | None:
    if instance.pk is None or (update_fields is not None and "is_active" not in update_fields):
        return None
    return sender.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()


@receiver(pre_save, sender=Membership)
@receiver(pre_save, sender=get_user_model())
def remember_active(sender, instance, update_fields=None, **kwargs):
    instance._itb_was_active = _was_active(sender, instance, update_fields)


@receiver(post_save, sender=Membership)
@receiver(post_save, sender=get_user_model())
def deactivation_ends_sessions(sender, instance, created, **kwargs):
    if created or not getattr(instance, "_itb_was_active", None) or instance.is_active:
        return
    user = instance.user if isinstance(instance, Membership) else instance
    sessions.end_all(user, reason="deactivated")
