"""What each signal proposes: the rules that turn signal fields into proposed fixes.

Pure rules over columns of the dataset (one value per sample, in dataset order); the
database writes, decisions and queues are :mod:`fercurate.fixes`. Every proposal has a
``score`` where lower is the stronger case for the fix (the signals' convention), so a
queue sorts strongest first and an auto-accept policy (:mod:`fercurate.policy`) is one
threshold per kind.

Label issues split in two, because a wrong relabel is worse than a drop:

* ``relabel`` where the out-of-fold model is confident in one other label (its
  probability and its margin over the runner-up both high): score ``1 - p(suggested)``;
* ``drop_ambiguous`` where it is sure only that the given label is unlikely, or the face
  sits between two emotions: score = the label quality, the estimated probability that
  the given label is right (:mod:`fercurate.signals.noise_model`; low = likely wrong).

The thresholds were calibrated on crowd votes of FER2013's val split
(``bench/curation_quality.py``): there, relabels above them name the crowd's label far
more often than the model's argmax in general does. Looser relabels, or disputing every
label below a quality line (``LabelRule.dispute_below``), trained the reference CNN no
better against the crowd (``bench/curation_effect.py --arm accept_all@FIELD=VALUE``), so the
line is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import fiftyone as fo

from fercurate import schema

#: use_crop is proposed when the eye line is tilted at least this much (degrees) ...
CROP_MIN_ROLL = 10.0
#: ... or the detected face covers less than this fraction of the image
CROP_MAX_FACE_AREA = 0.4


@dataclass
class Proposal:
    """What a signal says about one sample for one fix kind."""

    score: float          # lower = stronger case for the fix (the signals' convention)
    proposed_by: str
    evidence: dict        # kind-specific extras stored on the fix (target, group, ...)


@dataclass(frozen=True)
class LabelRule:
    """When a label issue is a relabel rather than a drop_ambiguous."""

    relabel_min_confidence: float = 0.6   # out-of-fold probability of the suggested label
    relabel_min_margin: float = 0.3       # ... less that of the runner-up
    #: a label whose estimated probability of being right (the label quality) is below this
    #: is disputed even where confident learning's count of wrong labels stopped short of it
    dispute_below: float = 0.0


LABEL_RULE = LabelRule()


def label_fix(given: str | None, probs: list[float] | None, classes: list[str], flagged: bool,
              quality: float | None, rule: LabelRule = LABEL_RULE) -> tuple[str, Proposal] | None:
    """The fix kind and proposal for one sample's label issue, or None when there is none."""
    flagged = flagged or (quality is not None and quality < rule.dispute_below)
    if not flagged or not probs or len(probs) != len(classes) or given not in classes:
        return None
    order = sorted(range(len(probs)), key=lambda k: -probs[k])
    best, second = order[0], order[1]
    p_best, p_second, p_given = probs[best], probs[second], probs[classes.index(given)]
    evidence = {schema.FIX_CONFIDENCE: round(p_best, 4), schema.FIX_MARGIN: round(p_best - p_second, 4),
                schema.FIX_GIVEN_PROB: round(p_given, 4)}
    if classes[best] != given and p_best >= rule.relabel_min_confidence \
            and p_best - p_second >= rule.relabel_min_margin:
        return schema.RELABEL, Proposal(round(1.0 - p_best, 4), "label_issues",
                                        {schema.FIX_TARGET: classes[best], **evidence})
    runner_up = classes[second] if classes[best] == given else classes[best]
    score = float(quality) if quality is not None else p_given
    return schema.DROP_AMBIGUOUS, Proposal(round(score, 4), "label_issues",
                                           {schema.FIX_RUNNER_UP: runner_up, **evidence})


# --- reading the signals' fields --------------------------------------------------------

def _column(ds: fo.Dataset, path: str) -> list:
    """A field's values in ``ds`` order, or Nones when the field does not exist yet."""
    if not ds.has_sample_field(path.split(".")[0]):
        return [None] * len(ds)
    return ds.values(path)


def label_fixes(ds: fo.Dataset, kind: str, rule: LabelRule = LABEL_RULE) -> list[Proposal | None]:
    """The ``relabel`` or ``drop_ambiguous`` proposal of every sample under ``rule``."""
    classes = list(ds.info.get(schema.INFO_CLASSES) or ds.default_classes or [])
    flags, quality = _column(ds, schema.IS_LABEL_ISSUE), _column(ds, schema.LABEL_QUALITY)
    probs, given = _column(ds, schema.OOF_PROBS), ds.values(f"{schema.GROUND_TRUTH}.label")
    out: list[Proposal | None] = []
    for f, q, pr, g in zip(flags, quality, probs, given):
        found = label_fix(g, pr, classes, bool(f), q, rule)
        out.append(found[1] if found and found[0] == kind else None)
    return out


def _relabel(ds: fo.Dataset) -> list[Proposal | None]:
    return label_fixes(ds, schema.RELABEL)


def _drop_ambiguous(ds: fo.Dataset) -> list[Proposal | None]:
    return label_fixes(ds, schema.DROP_AMBIGUOUS)


def _drop_duplicate(ds: fo.Dataset) -> list[Proposal | None]:
    cols = [_column(ds, f) for f in (schema.IS_DUPLICATE, schema.DUP_SCORE, schema.DUP_GROUP, schema.DUP_KIND,
                                     schema.DUP_LABEL_CONFLICT, schema.DUP_CROSS_SPLIT)]
    return [Proposal(score, "duplicates", {"group": group, "dup_kind": kind, "label_conflict": bool(conflict),
                                           "cross_split": bool(cross)})
            if flag else None for flag, score, group, kind, conflict, cross in zip(*cols)]


def _drop_nonface(ds: fo.Dataset) -> list[Proposal | None]:
    """Unusable images (the kind keeps its first name so earlier decisions stay attached)."""
    flags, scores = _column(ds, schema.IS_UNUSABLE), _column(ds, schema.USABILITY)
    reasons = _column(ds, schema.USABILITY_REASONS)
    return [Proposal(s or 0.0, "usability", {"reasons": list(r or [])}) if f else None
            for f, s, r in zip(flags, scores, reasons)]


def _drop_quality(ds: fo.Dataset) -> list[Proposal | None]:
    flags, scores = _column(ds, schema.IS_LOW_QUALITY), _column(ds, schema.QUALITY_SCORE)
    issues = _column(ds, schema.QUALITY_ISSUES)
    return [Proposal(s, "quality", {"issues": list(i or [])}) if f else None for f, s, i in zip(flags, scores, issues)]


def _use_crop(ds: fo.Dataset) -> list[Proposal | None]:
    """The crop is worth a look where it changes the image: a tilted head or a small face."""
    aligned, roll = _column(ds, schema.ALIGNED_FILEPATH), _column(ds, schema.FACE_ROLL)
    box = _column(ds, f"{schema.FACE_DETECTION}.bounding_box")
    out: list[Proposal | None] = []
    for path, r, b in zip(aligned, roll, box):
        tilt = abs(r) if r is not None else 0.0
        area = b[2] * b[3] if b else 1.0
        if path and (tilt >= CROP_MIN_ROLL or area < CROP_MAX_FACE_AREA):
            score = max(0.0, min(1.0 - tilt / 45.0, area / CROP_MAX_FACE_AREA / 2))
            out.append(Proposal(round(score, 4), "faces", {"roll": r, "face_area": round(area, 4)}))
        else:
            out.append(None)
    return out


#: kind -> the signal whose fields its proposals come from
SOURCE_SIGNAL: dict[str, str] = {
    schema.RELABEL: "label_issues", schema.DROP_AMBIGUOUS: "label_issues", schema.DROP_DUPLICATE: "duplicates",
    schema.DROP_NONFACE: "usability", schema.DROP_QUALITY: "quality", schema.USE_CROP: "faces",
}

#: kind -> rule producing one proposal (or None) per sample of the dataset, in its order
PROPOSERS: dict[str, Callable[[fo.Dataset], list[Proposal | None]]] = {
    schema.RELABEL: _relabel,
    schema.DROP_AMBIGUOUS: _drop_ambiguous,
    schema.DROP_DUPLICATE: _drop_duplicate,
    schema.DROP_NONFACE: _drop_nonface,
    schema.DROP_QUALITY: _drop_quality,
    schema.USE_CROP: _use_crop,
}
