def alerting(request):
    """Adds the alerting status (banner, unread count) to every page."""
    from .views import status_context

    return status_context(request)
