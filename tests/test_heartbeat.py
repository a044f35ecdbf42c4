"""The scan pings HEARTBEAT_URL so an outside monitor notices when alerting stops."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import call_command

from alerts.models import Heartbeat


class Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def monitor():
    server = HTTPServer(("127.0.0.1", 0), Recorder)  # port 0: the OS picks a free one
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Recorder.hits = []
    yield f"http://127.0.0.1:{server.server_port}/ping/itb"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_escalate_records_the_heartbeat_and_pings_the_monitor(monitor, settings, capsys):
    settings.HEARTBEAT_URL = monitor
    call_command("escalate")
    assert Heartbeat.objects.get(name="scan").last_success_at is not None
    assert Recorder.hits == ["/ping/itb"]
    assert "raised=0" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_monitor_outage_never_stops_the_scan(settings):
    settings.HEARTBEAT_URL = "http://127.0.0.1:9/unreachable"
    call_command("escalate")
    assert Heartbeat.objects.filter(name="scan").exists()
