#!/usr/bin/env python
"""Load test: the worklist against the login page, under gunicorn with 2 workers.

Sets up a scratch deployment (its own SQLite file by default, or ``--database-url``), migrates it,
collects static files, seeds the fictional demo clinic (``--pumps``), starts
``gunicorn itb_tracker.wsgi -w 2`` with production settings (DEBUG off), signs a demo nurse in,
then runs ``--clients`` concurrent clients for ``--seconds`` against each page in turn and prints
requests per second and their ratio. Standard library only; the data is synthetic.

    .venv/bin/python bin/load_pages.py                       # SQLite, 30 pumps
    .venv/bin/python bin/load_pages.py --database-url postgres://postgres@127.0.0.1:5432/itb_load

A PostgreSQL database given here is migrated and gets the demo clinic: use a scratch one.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
USERNAME = "demo-nurse"
GOAL = 1 / 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env, *args):
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def request(port, method, path, cookies=None, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = dict(headers or {})
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def sign_in(port, password) -> dict:
    response, page = request(port, "GET", "/login/")
    cookies = {k: m.value for k, m in SimpleCookie(response.getheader("Set-Cookie", "")).items()}
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    body = urlencode({"username": USERNAME, "password": password, "csrfmiddlewaretoken": token})
    response, _ = request(port, "POST", "/login/", cookies, body, {"Referer": f"http://127.0.0.1:{port}/login/"})
    if response.status != 302:
        raise SystemExit(f"sign-in failed: HTTP {response.status}")
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            cookies.update({k: m.value for k, m in SimpleCookie(value).items()})
    return cookies


def load(port, path, cookies, clients, seconds) -> tuple[float, int]:
    """(requests per second, errors) of ``clients`` threads requesting ``path`` for ``seconds``."""
    counts, errors = [0] * clients, [0] * clients
    deadline = time.monotonic() + seconds

    def client(index):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # keep-alive where the server allows
        cookie = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    counts[index] += 1
                else:
                    errors[index] += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started), sum(errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--pumps", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="itb-load-"))
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "false",
        "HTTPS": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": args.database_url or f"sqlite:///{scratch / 'load.sqlite3'}",
        "ITB_VAR_DIR": str(scratch),
        "STATIC_ROOT": str(scratch / "static"),
        "CELERY_BROKER_URL": f"filesystem://{scratch / 'broker'}",
    }
    password = secrets.token_urlsafe(16)
    print(f"setting up in {scratch} ({'PostgreSQL' if args.database_url else 'SQLite'}, {args.pumps} pumps)")
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input")
    manage({**env, "DEBUG": "true"}, "seed_demo", "--pumps", str(args.pumps))  # synthetic, refused without DEBUG
    manage(env, "escalate")
    setter = f"from django.contrib.auth.models import User; u = User.objects.get(username={USERNAME!r}); "
    manage(env, "shell", "-c", setter + f"u.set_password({password!r}); u.save()")

    command = [str(Path(PYTHON).with_name("gunicorn")), "itb_tracker.wsgi:application"]
    command += ["--workers", str(args.workers), "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        for _ in range(300):
            try:
                request(port, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        cookies = sign_in(port, password)
        for path in ("/login/", "/"):  # warm both workers' caches
            load(port, path, cookies if path == "/" else None, args.clients, 1)
        login_rps, login_errors = load(port, "/login/", None, args.clients, args.seconds)
        worklist_rps, worklist_errors = load(port, "/", cookies, args.clients, args.seconds)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    ratio = worklist_rps / login_rps
    print(f"gunicorn, {args.workers} workers, {args.clients} clients, {args.seconds:g} s each:")
    print(f"  login page  {login_rps:8.1f} requests/s  ({login_errors} errors)")
    print(f"  worklist    {worklist_rps:8.1f} requests/s  ({worklist_errors} errors)")
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"  worklist / login = {ratio:.2f}  (goal ≥ {GOAL:.2f}: {verdict})")


if __name__ == "__main__":
    main()
