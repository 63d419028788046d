"""Test session setup: a private fercurate home and a private MongoDB per run.

FiftyOne's bundled database service is one per user: a new process attaches to any
running one, whatever its database folder. So that tests never touch a developer's
datasets (or another test run's), the session starts its own mongod (the bundled binary)
and points FIFTYONE_DATABASE_URI at it. All of this must happen before fercurate (and
through it fiftyone) is imported.
"""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

_PREFIX = "fercurate-test-home-"
for stale in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):  # homes of finished runs
    pid = stale.name.removeprefix(_PREFIX).split("-")[0]
    if pid.isdigit() and not psutil.pid_exists(int(pid)):
        shutil.rmtree(stale, ignore_errors=True)
_HOME = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
os.environ["FERCURATE_HOME"] = _HOME
os.environ["FERCURATE_DATA"] = os.path.join(_HOME, "no-data-here")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _start_private_mongod(home: str) -> str:
    import importlib.util  # locate the bundled binary without importing fiftyone (that reads its config)

    mongod = Path(importlib.util.find_spec("fiftyone").origin).parent / "db" / "bin" / "mongod"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dbpath = os.path.join(home, "test-mongo")
    os.makedirs(dbpath)
    proc = subprocess.Popen([str(mongod), "--dbpath", dbpath, "--port", str(port), "--bind_ip", "127.0.0.1",
                             "--nounixsocket", "--quiet"], stdout=subprocess.DEVNULL)
    atexit.register(lambda: (proc.terminate(), proc.wait(30)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"mongodb://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the test mongod did not start")


if not os.environ.get("FIFTYONE_DATABASE_URI"):
    os.environ["FIFTYONE_DATABASE_URI"] = _start_private_mongod(_HOME)

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: The real FER2013 beside the checkout (developer machines and CI); never used at run time.
SHARED_FER2013 = Path(os.environ.get("FERCURATE_TEST_FER2013", REPO.parent / "shared" / "data" / "fer2013"))


@pytest.fixture
def unique_name(request) -> str:
    """A dataset name no other test uses."""
    import hashlib
    node = request.node.nodeid
    return f"t-{request.node.name[:40]}-{hashlib.sha1(node.encode()).hexdigest()[:8]}".replace("[", "-").replace("]", "").lower()


@pytest.fixture
def shared_fer2013() -> Path:
    if not (SHARED_FER2013 / "train").is_dir():
        pytest.skip(f"real FER2013 not found at {SHARED_FER2013} (set FERCURATE_TEST_FER2013 to run this test)")
    return SHARED_FER2013


@pytest.fixture
def one_thread():
    """Small models train fastest on one torch thread (and a busy machine hurts two threads most).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def launched_sample():
    """``fercurate launch fer2013 --no-app`` with no FER2013 on disk, once per session: the bundled
    sample of real FER2013 faces, ingested and scored by every signal, as a new user's first
    command leaves it. Scoring takes minutes, so the CLI test and the signal checks share it.
    Returns (what the command printed, the dataset)."""
    import contextlib
    import io

    import fiftyone as fo

    from fercurate import cli

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["launch", "fer2013", "--no-app"])
    assert code == 0, printed.getvalue()[-2000:]
    return printed.getvalue(), fo.load_dataset("fer2013" + cli.SAMPLE_NAME_SUFFIX)
