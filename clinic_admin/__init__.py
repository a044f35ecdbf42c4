"""In-app clinic administration and audit for clinic admins: staff and roles, clinic settings,
escalation policies and webhooks, failing addresses, the audit report, record histories and the
access log. It sits above clinics, patients and alerts (it reads all three); they never import it."""
