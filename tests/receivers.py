"""Local HTTP receivers that apprise really sends to (tests read what arrived; apprise is not mocked).

- ``JsonReceiver``: a hospital's own paging gateway as ``json://127.0.0.1:PORT/page``; apprise
  POSTs ``{"title", "message", "type", …}``.
- ``NtfyReceiver``: an ntfy-compatible server as ``ntfy://127.0.0.1:PORT/TOPIC``; apprise POSTs
  ``{"topic", "message", …}`` to its root, and the receiver answers as ntfy does.

Both bind port 0 (STACK.md) and can be told to answer with an error status or to stall (a timeout).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Receiver:
    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        self.delay_seconds = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(receiver.answer(body).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, body) -> str:
        return "{}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def messages(self) -> list[str]:
        return [r["body"].get("message", "") for r in self.received]

    def last_code(self) -> str:
        """The 6-digit code of the last verification message that arrived."""
        return re.search(r"\b(\d{6})\b", self.messages[-1]).group(1)


class JsonReceiver(_Receiver):
    def url(self, path="page") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


class NtfyReceiver(_Receiver):
    def url(self, topic="itb-oncall-topic") -> str:
        return f"ntfy://127.0.0.1:{self.port}/{topic}"

    def answer(self, body) -> str:
        if self.status == 200:
            return json.dumps({"id": "t1", "time": int(time.time()), "event": "message", **body})
        return json.dumps({"code": self.status * 100 + 1, "http": self.status, "error": "refused by test"})
