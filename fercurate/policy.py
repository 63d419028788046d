"""Auto-accept policies: accept only the proposals strong enough to need no look.

A curator facing 10,000 proposals can let a policy accept the clear cases and review
the rest. A policy is one threshold per fix kind on the fix's ``score`` (lower = stronger
case, :mod:`fercurate.proposals`); a kind without a threshold is never auto-accepted.
Its decisions go through :func:`fercurate.fixes.decide` with the curator
``auto:<policy>``, so they sit in the audit log like anyone's and can be reviewed
(``fercurate decisions``) or undone one by one.

The ``default`` thresholds are the ones ``bench/curation_effect.py`` showed to train a
better model against crowd labels on FER2013's val split: every label proposal, because
the reference CNN trained on that version agreed more with people than on the
``cautious`` one (numbers in the README). The proposals themselves are already the
confident cases (:mod:`fercurate.proposals`); ``cautious`` keeps more images.
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
        schema.RELABEL: 0.4,          # every relabel proposal (suggested label's probability >= 0.6)
        schema.DROP_AMBIGUOUS: 1.0,   # every disputed label dropped
        schema.DROP_DUPLICATE: 1.0,   # every duplicate (its group's keeper stays)
        schema.DROP_NONFACE: 1.0,
        schema.DROP_QUALITY: 1.0,
    }, "every relabel and label drop, every duplicate/non-face/low-quality drop (never use_crop)"),
    AutoPolicy("cautious", {
        schema.RELABEL: 0.3,          # suggested label's out-of-fold probability >= 0.7
        schema.DROP_AMBIGUOUS: 0.5,   # the given label is less likely right than wrong
        schema.DROP_DUPLICATE: 1.0, schema.DROP_NONFACE: 1.0, schema.DROP_QUALITY: 1.0,
    }, "confident relabels, labels less likely right than wrong dropped, every image drop"),
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
