"""Where fercurate keeps things, and how FiftyOne is pointed there.

Everything fercurate writes lives under one folder, ``FERCURATE_HOME`` (default
``~/.local/share/fercurate``):

    db/        the bundled MongoDB's files (unless FIFTYONE_DATABASE_URI names a server)
    cache/     PNGs decoded from fer2013.csv, one folder per csv content hash
    media/     derived images (aligned face crops), one folder per dataset
    reports/   ingest reports, charts
    data/      default place to look for source data (``FERCURATE_DATA``)

FiftyOne reads its configuration from the environment when it is imported, and the App
server runs in a child process that inherits the environment, so the settings are
applied as environment defaults before fiftyone is first imported (see
``fercurate/__init__.py``). A value the user exported already always wins.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

DEFAULT_HOME = Path.home() / ".local" / "share" / "fercurate"
DEFAULT_APP_PORT = 5151


def home() -> Path:
    """The fercurate data folder (``$FERCURATE_HOME``)."""
    return Path(os.environ.get("FERCURATE_HOME", DEFAULT_HOME)).expanduser().resolve()


def data_root() -> Path:
    """Where ``fercurate launch NAME`` looks for ``NAME/`` when no --source is given."""
    env = os.environ.get("FERCURATE_DATA")
    return Path(env).expanduser().resolve() if env else home() / "data"


def cache_dir() -> Path:
    return home() / "cache"


def media_dir(dataset_name: str) -> Path:
    return home() / "media" / dataset_name


def reports_dir(dataset_name: str) -> Path:
    return home() / "reports" / dataset_name


def database_dir() -> Path:
    return home() / "db"


def curator() -> str:
    """Who is deciding: ``$FERCURATE_CURATOR``, else the OS user."""
    name = os.environ.get("FERCURATE_CURATOR")
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return "unknown"


def fiftyone_env() -> dict[str, str]:
    """Environment defaults that make FiftyOne keep its database in ``home()/db``.

    FIFTYONE_DATABASE_URI, when set, points at an external MongoDB instead and the
    bundled mongod is not started.
    """
    env = {
        "FIFTYONE_DO_NOT_TRACK": "true",
        # the bundled mongod 6.0 is older than FiftyOne's preferred minimum; it works.
        "FIFTYONE_DATABASE_VALIDATION": "false",
    }
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        env["FIFTYONE_DATABASE_DIR"] = str(database_dir())
    return env


#: seconds between redraws of a progress bar when stderr is not a terminal
PIPED_PROGRESS_INTERVAL = "10"


def tame_progress_bars() -> None:
    """When stderr is not a terminal (CI, nohup, a pipe), every bar redraw is a line in a
    log: tqdm then redraws at most every ``PIPED_PROGRESS_INTERVAL`` seconds, and FiftyOne's
    own bars (which ignore tqdm's settings) are off. Explicit settings win."""
    try:
        interactive = sys.stderr.isatty()
    except (AttributeError, ValueError):   # a closed or replaced stream
        interactive = False
    if not interactive:
        os.environ.setdefault("TQDM_MININTERVAL", PIPED_PROGRESS_INTERVAL)
        os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
        _slow_down_imported_tqdm(float(os.environ["TQDM_MININTERVAL"]))


def _slow_down_imported_tqdm(interval: float) -> None:
    """tqdm reads ``TQDM_*`` once, when it is first imported, and ``import torch`` imports it: a
    script that imports torch before fercurate would keep a log line per step. Give the already
    imported class the same default (an explicit ``mininterval=`` still wins)."""
    std = sys.modules.get("tqdm.std")
    if std is None or getattr(std.tqdm, "_fercurate_interval", None) is not None:
        return
    import functools

    std.tqdm.__init__ = functools.partialmethod(std.tqdm.__init__, mininterval=interval)
    std.tqdm._fercurate_interval = interval


def apply_fiftyone_env() -> None:
    """Set :func:`fiftyone_env` as environment defaults (existing values win)."""
    for key, value in fiftyone_env().items():
        os.environ.setdefault(key, value)


def plugins_dir() -> Path:
    """The folder to point ``FIFTYONE_PLUGINS_DIR`` at: fercurate's FiftyOne plugin ships
    inside the package (``fercurate/plugins/fercurate``), so every install has it."""
    return Path(__file__).resolve().parent / "plugins"
