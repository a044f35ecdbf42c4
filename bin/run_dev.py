#!/usr/bin/env python
"""`make run`: migrate, seed the demo clinic, then run web, Celery worker and beat together.

Development only (SQLite in WAL mode and kombu's filesystem broker under var/, no servers).
Ctrl-C stops all three.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def manage(*args):
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def main():
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("SITE_URL", f"http://{HOST}:{PORT}")
    # The fictional demo clinic's logins work with their printed passwords alone: two-factor
    # sign-in is not required here (seed_demo says so beside the logins; anyone may still enrol).
    os.environ.setdefault("MFA_REQUIRED_FOR_ADMINS", "false")
    (ROOT / "var" / "broker").mkdir(parents=True, exist_ok=True)
    manage("migrate", "--no-input", "-v", "0")
    manage("seed_demo")
    # One scan now, so alerts exist (and the "alerting is not running" banner is quiet) before beat's
    # first tick, which comes a whole period after it starts.
    manage("escalate")
    celery = [PYTHON, "-m", "celery", "-A", "itb_tracker"]
    processes = [
        subprocess.Popen([PYTHON, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"], cwd=ROOT),
        subprocess.Popen(
            [
                *celery,
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
        ),
        subprocess.Popen([*celery, "beat", "--loglevel", "INFO"], cwd=ROOT),
    ]
    print(f"\nITB Tracker is running at http://{HOST}:{PORT}/  (web + worker + beat; Ctrl-C stops all)\n", flush=True)

    def stop(*_):
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while all(process.poll() is None for process in processes):
        time.sleep(1)
    print("A process exited; stopping the others.", file=sys.stderr)
    stop()


if __name__ == "__main__":
    main()
