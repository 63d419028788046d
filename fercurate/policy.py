"""Auto-accept policies: accept only the proposals strong enough to need no look.

A curator facing 10,000 proposals can let a policy accept the clear cases and review
the rest. A policy is one threshold per fix kind on the fix's ``score`` (lower = stronger
case, :mod:`fercurate.proposals`); a kind without a threshold is never auto-accepted.
Its decisions go through :func:`fercurate.fixes.decide` with the curator
``auto:<policy>``, so they sit in the audit log like anyone's and can be reviewed
(``fercurate decisions``) or undone one by one.

The ``default`` thresholds are the ones ``bench/curation_effect.py`` showed to train a
better model against crowd labels on FER2013's val split; the numbers are in the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fercurate import schema
from fercurate.errors import FercurateError


@dataclass(frozen=True)
class AutoPolicy:
    name: str
    #: kind -> accept a pending fix of that kind when its score is at most this
    max_score: dict[str, float] = field(default_factory=dict)
    description: str = ""

    @property
    def curator(self) -> str:
        return f"{schema.AUTO_CURATOR_PREFIX}{self.name}"

    def accepts(self, kind: str, score: float | None) -> bool:
        limit = self.max_score.get(kind)
        return limit is not None and score is not None and score <= limit


POLICIES: dict[str, AutoPolicy] = {p.name: p for p in (
    AutoPolicy("default", {
        schema.RELABEL: 0.3,          # suggested label's out-of-fold probability >= 0.7
        schema.DROP_AMBIGUOUS: 0.5,   # the given label is less likely right than wrong (label quality <= 0.5)
        schema.DROP_DUPLICATE: 1.0,   # every duplicate (its group's keeper stays)
        schema.DROP_NONFACE: 1.0,
        schema.DROP_QUALITY: 1.0,
    }, "confident relabels, clearly disputed labels dropped, every duplicate/non-face/low-quality drop"),
    AutoPolicy("drops", {
        schema.DROP_DUPLICATE: 1.0, schema.DROP_NONFACE: 1.0, schema.DROP_QUALITY: 1.0,
    }, "only the image drops (duplicates, non-faces, low quality); no label changes"),
)}


def get(name: str) -> AutoPolicy:
    """The named policy, or a one-line error listing the known ones."""
    try:
        return POLICIES[name]
    except KeyError:
        raise FercurateError(f"unknown auto-accept policy '{name}'; choose from {', '.join(POLICIES)}") from None
