"""The rule that splits a label issue into relabel or drop_ambiguous, and the auto-accept policies."""

from __future__ import annotations

import pytest

from fercurate import policy, schema
from fercurate.proposals import LabelRule, label_fix

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def probs(**p: float) -> list[float]:
    rest = (1 - sum(p.values())) / (len(CLASSES) - len(p))
    return [p.get(c, rest) for c in CLASSES]


def test_a_confident_other_label_is_a_relabel_scored_by_its_doubt():
    kind, prop = label_fix("fear", probs(happy=0.85, fear=0.05), CLASSES, True, 0.1)
    assert kind == schema.RELABEL and prop.evidence[schema.FIX_TARGET] == "happy"
    assert prop.score == pytest.approx(0.15) and prop.evidence[schema.FIX_GIVEN_PROB] == 0.05


@pytest.mark.parametrize("case, p", [
    ("two emotions tie", probs(fear=0.05, surprise=0.45, happy=0.40)),     # fear vs surprise, no winner
    ("no class stands out", probs(fear=0.1, sad=0.3)),                     # only: the given label is unlikely
    ("the model agrees with the given label but barely", probs(fear=0.40, surprise=0.38)),
])
def test_no_clear_answer_is_a_drop_ambiguous_never_a_relabel(case, p):
    kind, prop = label_fix("fear", p, CLASSES, True, 0.2)
    assert kind == schema.DROP_AMBIGUOUS, case
    assert schema.FIX_TARGET not in prop.evidence and prop.score == 0.2
    assert prop.evidence[schema.FIX_RUNNER_UP] != "fear"


def test_unflagged_or_unscored_samples_get_no_label_fix():
    assert label_fix("fear", probs(happy=0.9), CLASSES, False, 0.1) is None
    assert label_fix("fear", None, CLASSES, True, 0.1) is None
    assert label_fix("contempt", probs(happy=0.9), CLASSES, True, 0.1) is None


def test_the_rule_thresholds_are_what_decides():
    p = probs(happy=0.55, fear=0.1)
    assert label_fix("fear", p, CLASSES, True, 0.1)[0] == schema.DROP_AMBIGUOUS
    assert label_fix("fear", p, CLASSES, True, 0.1, LabelRule(0.5, 0.3))[0] == schema.RELABEL


def test_policies_accept_at_or_below_their_threshold_and_never_an_uncovered_kind():
    default = policy.get("default")
    limit = default.max_score[schema.RELABEL]
    assert default.accepts(schema.RELABEL, limit) and not default.accepts(schema.RELABEL, limit + 1e-6)
    assert not default.accepts(schema.USE_CROP, 0.0) and not default.accepts(schema.RELABEL, None)
    assert default.curator == "auto:default"
    assert schema.RELABEL not in policy.get("drops").max_score
