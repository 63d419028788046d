"""The App server started by ``fercurate launch`` answers on 127.0.0.1 and stops cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from fercurate.app import port_is_free
from tests import factories

pytestmark = pytest.mark.app


def bundled_database_env() -> dict:
    """This test also covers the default path: FiftyOne's bundled database service."""
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_DATABASE_URI"}
    env.pop("FIFTYONE_DATABASE_DIR", None)  # fercurate sets it from FERCURATE_HOME
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_launch_serves_the_app_and_stops_it(tmp_path, stop_signal):
    root = factories.fer2013_folder(tmp_path / "fer", per_class=1)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fercurate.cli", "launch", "app-test", "--source", str(root), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=bundled_database_env(),
    )
    try:
        url, deadline, seen = None, time.monotonic() + 240, []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if line.startswith("FiftyOne App: "):
                url = line.split()[2]
        assert url == f"http://127.0.0.1:{port}/datasets/app-test", "".join(seen[-20:])
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        # FiftyOne's server service and the server it runs, both given --port
        servers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                   if str(port) in c.cmdline() and "main.py" in " ".join(c.cmdline())]
        assert servers
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=180) == 0     # generous: shutting FiftyOne down is slow on a loaded machine
        gone, alive = psutil.wait_procs(servers, timeout=60)
        assert not alive, [p.cmdline() for p in alive]
        assert port_is_free(port)
    finally:
        if proc.poll() is None:
            proc.kill()
