"""fercurate's FiftyOne plugin: review proposed fixes in the App, decide them, freeze versions.

Thin over the ``fercurate`` package: every decision goes through ``fercurate.fixes`` and
every version through ``fercurate.versions``.
"""

from .operators import OPERATORS
from .panel import ReviewPanel


def register(p):
    for operator in OPERATORS:
        p.register(operator)
    p.register(ReviewPanel)
