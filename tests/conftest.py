"""Test session setup: a private fercurate home (and so a private MongoDB) per run.

FERCURATE_HOME must be set before fercurate (and through it fiftyone) is imported.
"""

import os
import shutil
import tempfile
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

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: The real FER2013 beside the checkout (developer machines and CI); never used at run time.
SHARED_FER2013 = Path(os.environ.get("FERCURATE_TEST_FER2013", REPO.parent / "shared" / "data" / "fer2013"))


@pytest.fixture
def unique_name(request) -> str:
    """A dataset name no other test uses."""
    return "t-" + request.node.name.replace("[", "-").replace("]", "").lower()[:60]


@pytest.fixture
def shared_fer2013() -> Path:
    if not (SHARED_FER2013 / "train").is_dir():
        pytest.skip(f"real FER2013 not found at {SHARED_FER2013} (set FERCURATE_TEST_FER2013 to run this test)")
    return SHARED_FER2013
