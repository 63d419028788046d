"""fercurate: find and fix label problems in facial-emotion-recognition datasets.

The data flow is CLI -> ``sources`` (read a layout into records) -> ``dataset`` (a
persistent FiftyOne dataset whose fields are named in ``schema``) -> ``signals`` ->
review in the FiftyOne App -> frozen versions -> a manifest for ``training``.
"""

from fercurate.config import apply_fiftyone_env as _apply_fiftyone_env, tame_progress_bars as _tame_progress_bars

# FiftyOne and tqdm read their settings at import: set fercurate's database folder and
# the progress-bar rate of non-interactive runs first (``training`` imports this too).
_tame_progress_bars()
_apply_fiftyone_env()

__version__ = "0.1.0"
