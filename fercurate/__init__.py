"""fercurate: find and fix label problems in facial-emotion-recognition datasets.

The data flow is CLI -> ``sources`` (read a layout into records) -> ``dataset`` (a
persistent FiftyOne dataset whose fields are named in ``schema``) -> ``signals`` ->
review in the FiftyOne App -> frozen versions -> a manifest for ``training``.
"""

from fercurate.config import apply_fiftyone_env as _apply_fiftyone_env

# FiftyOne reads its config at import: set fercurate's database folder first.
_apply_fiftyone_env()

__version__ = "0.1.0"
