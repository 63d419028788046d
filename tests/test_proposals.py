"""The rule that splits a label issue into relabel or drop_ambiguous, and the auto-accept policies."""

from __future__ import annotations

import pytest

from fercurate import policy, schema
from fercurate.proposals import LABEL_RULE, LabelRule, label_fix

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
    no_line = LabelRule(dispute_below=0.0)
    assert label_fix("fear", probs(happy=0.9), CLASSES, False, 0.1, no_line) is None
    assert label_fix("fear", probs(happy=0.9), CLASSES, False, None) is None   # unscored: no line applies
    assert label_fix("fear", None, CLASSES, True, 0.1) is None
    assert label_fix("contempt", probs(happy=0.9), CLASSES, True, 0.1) is None


def test_a_label_below_the_dispute_line_is_disputed_though_cleanlab_did_not_count_it():
    """Confident learning undercounts FER2013's wrong labels (the model learnt the
    confusions): a label less likely right than the line is proposed all the same."""
    rule = LabelRule(dispute_below=0.6)
    between = probs(fear=0.35, surprise=0.40)            # a fear/surprise face, no clear winner
    kind, prop = label_fix("fear", between, CLASSES, False, 0.55, rule)
    assert kind == schema.DROP_AMBIGUOUS and prop.score == 0.55
    assert prop.evidence[schema.FIX_RUNNER_UP] == "surprise"
    assert label_fix("fear", between, CLASSES, False, 0.6, rule) is None     # on the line: kept
    confident = probs(happy=0.8, fear=0.05)
    assert label_fix("fear", confident, CLASSES, False, 0.3, rule)[0] == schema.RELABEL


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


def test_the_dispute_line_reads_the_dataset_fields_and_leaves_the_default_proposals_alone(tmp_path, unique_name):
    """``label_fixes`` under another rule is how bench/curation_effect.py tries one without
    touching the dataset: an unflagged label of quality 0.5 is disputed only under the line."""
    from fercurate.proposals import label_fixes
    from tests.factories import planted_review_dataset

    ds, planted = planted_review_dataset(tmp_path / "fer2013", unique_name)
    ds.set_values(schema.LABEL_QUALITY, {planted["clean"]: 0.5}, key_field="id")
    ids = ds.values("id")

    def proposed(rule: LabelRule = LABEL_RULE, kind: str = schema.DROP_AMBIGUOUS) -> set[str]:
        return {i for i, p in zip(ids, label_fixes(ds, kind, rule)) if p is not None}

    assert proposed() == {planted["ambiguous"]}
    assert proposed(LabelRule(dispute_below=0.6)) == {planted["ambiguous"], planted["clean"]}
    assert proposed(LabelRule(dispute_below=0.5)) == {planted["ambiguous"]}
    assert proposed(LabelRule(dispute_below=0.6), schema.RELABEL) == {planted["mislabeled"]}
