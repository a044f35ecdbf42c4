"""`make run` for real (bin/run_dev.py in a scratch folder): it prints the demo logins with the
note that two-factor sign-in is off for the demo clinic, and a printed admin password alone
opens the clinic administration (the demo accounts are not enrolled)."""

import http.client
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .test_deployment import ROOT, clean_env, free_port

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("services")]


def read_until(process, pattern, seconds):
    """The process's output up to the first line matching ``pattern``."""
    lines = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            assert process.poll() is None, "".join(lines)
            continue
        lines.append(line)
        if re.search(pattern, line):
            return "".join(lines)
    raise AssertionError("not seen in time:\n" + "".join(lines))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_in(base, username, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    page = opener.open(f"{base}/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    try:
        opener.open(urllib.request.Request(f"{base}/login/", data=body.encode(), headers={"Referer": base}))
    except urllib.error.HTTPError as redirect:
        return opener, redirect.code, redirect.headers["Location"]
    raise AssertionError("the login did not redirect")


def test_make_run_prints_demo_logins_that_work_without_a_second_factor(tmp_path):
    port = free_port()
    env = clean_env(DEBUG="true", ITB_VAR_DIR=str(tmp_path), PORT=str(port), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "bin/run_dev.py"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = read_until(process, r"is running at", 400)
        assert "Two-factor sign-in is off for this fictional demo clinic (MFA_REQUIRED_FOR_ADMINS=false)" in output
        logins = dict(re.findall(r"^\s+\S.*?\s(demo-[a-z0-9]+)\s+(\S+)$", output, re.M))
        assert set(logins) == {"demo-nurse", "demo-nurse2", "demo-physician", "demo-admin", "demo-superuser"}

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # runserver binds a moment after the banner
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        opener, status, location = sign_in(base, "demo-admin", logins["demo-admin"])
        assert (status, location) == (302, "/")  # no code asked: not enrolled
        page = opener.open(f"{base}/clinic/", timeout=30)
        assert page.status == 200 and "Clinic administration" in page.read().decode()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        process.stdout.close()
