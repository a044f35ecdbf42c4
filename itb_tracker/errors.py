"""Error reporting that never carries request data (it could hold patient details)."""

from django.views.debug import ExceptionReporter


class NoRequestDataExceptionReporter(ExceptionReporter):
    """Drops the request's GET, POST, FILES, cookies and headers from every rendered report."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        for key in (
            "request_GET_items",
            "filtered_POST_items",
            "request_FILES_items",
            "request_COOKIES_items",
            "request_meta",
            "settings",
        ):
            data.pop(key, None)
        data["request"] = None
        # Frame locals can hold form values and query strings (an MRN, a name): drop them too.
        for frame in data.get("frames", []):
            frame["vars"] = []
        return data
