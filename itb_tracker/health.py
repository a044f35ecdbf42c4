"""Health, readiness and metrics endpoints for load balancers and monitoring.

- ``/healthz``: the process answers. No database, no session: a load balancer's liveness probe.
- ``/readyz``: what the web needs to serve pages — the database reachable and fully migrated.
  503 with a JSON reason otherwise. The broker and the last scan's age are reported in the body
  but never fail it: a Redis outage must not take the pages (and their "alerting is not running"
  banner) off the load balancer.
- ``/metrics``: Prometheus text format behind ``METRICS_TOKEN`` (a bearer token); 404 when unset.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
@login_not_required
def healthz(request):
    return JsonResponse({"status": "ok"})


def database_readiness(connection) -> tuple[bool, str]:
    """(ready, reason): the database answers and has no unapplied migration."""
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:  # any driver error means "not reachable"; its text carries no patient data
        return False, f"database unreachable: {exc.__class__.__name__}"
    if plan:
        return False, f"database not migrated: {len(plan)} migration(s) unapplied"
    return True, "ok"


@require_GET
@never_cache
@login_not_required
def readyz(request):
    from alerts.metrics import broker_status, last_scan_age_seconds

    ready, reason = database_readiness(connections[DEFAULT_DB_ALIAS])
    body = {"status": "ok" if ready else "unavailable", "database": reason}
    if ready:
        body["last_scan_age_seconds"] = last_scan_age_seconds()
    body["broker"] = broker_status()
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
@never_cache
@login_not_required
def metrics(request):
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from alerts.metrics import AlertingCollector

    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are disabled: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AlertingCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
