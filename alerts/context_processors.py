def alerting(request):
    """Adds the alerting status (banner, unread count) to every page, computed once a request even
    when several templates render (a page and its fragments)."""
    from .views import status_context

    cached = getattr(request, "_itb_alerting_status", None)
    if cached is None:
        cached = request._itb_alerting_status = status_context(request)
    return cached
