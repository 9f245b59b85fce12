"""``matextract app`` as a new user meets it: a fresh home (no ~/.streamlit), no stdin, the
default options (browser opening on). Streamlit's first run used to stop at an e-mail prompt
on the terminal and serve nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("streamlit", reason="streamlit is not installed (pip install -e '.[app]')")

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_app_serves_its_page_on_first_run_without_a_terminal(tmp_path):
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "BROWSER": "true"}  # 'true': a browser no-op
    process = subprocess.Popen([sys.executable, "-m", "app", "app", "--port", str(port)],
                               cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/", timeout=2) as reply:
                    status, page = reply.status, reply.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, process.stdout.read1().decode() if process.poll() else "no page"
        assert "<html" in page.lower()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert "Email" not in output
