"""FIFTYONE_DATABASE_URI points fercurate at an external MongoDB (a team's shared server)."""

import os
import socket
import subprocess
import sys
import time

import pytest
from fiftyone.core.service import DatabaseService

from tests import factories


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mongod(tmp_path):
    """A separate mongod (the bundled binary) standing in for a team's server."""
    port = free_port()
    (tmp_path / "mongo").mkdir()
    proc = subprocess.Popen([DatabaseService.find_mongod(), "--dbpath", str(tmp_path / "mongo"), "--port", str(port),
                             "--bind_ip", "127.0.0.1", "--nounixsocket"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    yield f"mongodb://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(30)


def fercurate(*args, env):
    return subprocess.run([sys.executable, "-m", "fercurate.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_external_database_holds_the_dataset_and_no_local_db_starts(tmp_path, mongod):
    home = tmp_path / "home"
    env = {**os.environ, "FERCURATE_HOME": str(home), "FIFTYONE_DATABASE_URI": mongod}
    env.pop("FIFTYONE_DATABASE_DIR", None)
    root = factories.fer2013_folder(tmp_path / "fer", per_class=1)
    out = fercurate("ingest", str(root), "--name", "team", env=env)
    assert out.returncode == 0, out.stderr
    assert not (home / "db").exists()
    # a second curator with another FERCURATE_HOME sees the same dataset
    other = {**env, "FERCURATE_HOME": str(tmp_path / "home2")}
    status = fercurate("status", "team", env=other)
    assert status.returncode == 0 and "21 samples" in status.stdout


def test_unreachable_external_database_is_one_line(tmp_path):
    env = {**os.environ, "FERCURATE_HOME": str(tmp_path / "h"), "FIFTYONE_DATABASE_URI":
           f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=2000&connectTimeoutMS=2000"}
    env.pop("FIFTYONE_DATABASE_DIR", None)
    out = fercurate("status", env=env)
    assert out.returncode == 2
    assert "cannot use MongoDB at FIFTYONE_DATABASE_URI" in out.stderr and "Traceback" not in out.stderr
