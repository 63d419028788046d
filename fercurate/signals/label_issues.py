"""The ``label_issues`` signal: cleanlab on out-of-fold probabilities of a CNN trained here.

Every image, in every split (FER2013's test labels are as noisy as its training labels),
is scored by models that did not see its label: stratified K-fold cross-validation of
the classifier in :mod:`fercurate.signals.classifier`, one resumable fold at a time
(:mod:`fercurate.signals.crossval`). The folds keep each duplicate group together, so
the signal requires ``duplicates``: a copy of an image in the training folds would hand
it its own label and hide the issue.
cleanlab then ranks the given labels (``cleanlab.rank.get_label_quality_scores``, by
default ``normalized_margin``: the given label's probability less the best other one's,
lower = more likely wrong; it ranked the labels the crowd disputes better than
self-confidence on FER2013's val split) and flags the likely errors
(``cleanlab.filter.find_label_issues``, confident learning: pruned by the estimated noise
rates between each pair of classes). :mod:`fercurate.proposals` turns a flag into a
relabel or a drop_ambiguous.

Fields: ``schema.LABEL_QUALITY`` (score), ``schema.IS_LABEL_ISSUE`` (flag),
``schema.SUGGESTED_LABEL`` (the out-of-fold argmax with its probability) and
``schema.OOF_PROBS`` (probabilities in ``dataset.info[INFO_CLASSES]`` order).

The fold-0 model's penultimate features of every image are kept in the work folder;
:func:`classifier_features` hands them to other modules (the embeddings signal's
weight-free fallback).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import fiftyone as fo
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from fercurate import schema
from fercurate.errors import FercurateError
from fercurate.signals import computed, register
from fercurate.signals.base import ChunkStore, SampleTable, Signal, set_field, work_dir_for
from fercurate.signals.classifier import ClassifierParams, load_images
from fercurate.signals.crossval import cross_val_probs

NAME = "label_issues"
FEATURES_KEY = "features"   # ChunkStore key of the fold-0 model's features (+ sample ids)
TOP_N = 10
#: below this median number of images per class, a classifier trained from scratch is too
#: weak for its disagreements to mean much; the summary then says so
RELIABLE_PER_CLASS = 200


@dataclass
class LabelIssueParams:
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    #: cleanlab.filter.find_label_issues ``filter_by`` (confident-learning pruning rule)
    filter_by: str = "prune_by_noise_rate"
    #: cleanlab.rank.get_label_quality_scores ``method``
    quality_method: str = "normalized_margin"


def folds_for(labels: np.ndarray, classes: list[str], folds: int) -> int:
    """K, lowered to the smallest class's size so every fold holds every class; a class with
    a single sample cannot be held out and trained on at once, so that is an error."""
    counts = np.bincount(labels, minlength=len(classes))
    present = counts[counts > 0]
    if len(present) < 2:
        raise FercurateError(f"{NAME}: '{schema.GROUND_TRUTH}' holds {len(present)} class(es); "
                             "finding label issues needs samples of at least 2 classes")
    smallest = int(present.min())
    if smallest < 2:
        rare = [c for c, n in zip(classes, counts) if n == 1]
        raise FercurateError(f"{NAME}: class {', '.join(repr(c) for c in rare)} has 1 sample in "
                             f"'{schema.GROUND_TRUTH}'; cross-validation needs >= 2 per class: "
                             "add samples or relabel/remove it")
    return min(folds, smallest)


def label_indices(table: SampleTable) -> np.ndarray:
    """The given labels as indices into ``table.classes``; unknown labels are an error."""
    known = set(table.classes)
    unknown = sorted({str(lab) for lab in table.labels if lab not in known})
    if unknown:
        raise FercurateError(f"{NAME}: '{schema.GROUND_TRUTH}' labels {', '.join(unknown[:5])} are not in the "
                             f"dataset classes {table.classes}; fix the labels or dataset.info['{schema.INFO_CLASSES}']")
    return table.label_indices()


def duplicate_groups(ds: fo.Dataset, table: SampleTable) -> np.ndarray:
    """One group id per sample of ``table``: its duplicate group, or a group of its own."""
    groups = dict(zip(*ds.values(["id", schema.DUP_GROUP]))) if ds.has_sample_field(schema.DUP_GROUP) else {}
    names = [groups.get(i) for i in table.ids]
    index: dict = {}
    return np.array([index.setdefault(g if g is not None else ("own", i), len(index))
                     for i, g in enumerate(names)], dtype=np.int64)


def score_labels(labels: np.ndarray, pred_probs: np.ndarray, filter_by: str = "prune_by_noise_rate",
                 quality_method: str = "normalized_margin") -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's label quality (lower = more likely wrong) and issue flags. A class in the
    class list that no sample carries is fine: cleanlab keeps its column and flags nothing for it."""
    quality = get_label_quality_scores(labels, pred_probs, method=quality_method)
    is_issue = find_label_issues(labels, pred_probs, filter_by=filter_by)
    return quality, is_issue


@register
class LabelIssues(Signal):
    """cleanlab label quality from out-of-fold probabilities of a CNN trained here."""

    name = NAME
    requires = ("duplicates",)
    uses_labels = True

    def default_params(self) -> LabelIssueParams:
        return LabelIssueParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> dict:
        p = self.params
        labels = label_indices(table)
        folds = folds_for(labels, table.classes, p.classifier.folds)
        images = load_images(table.filepaths, p.classifier.image_size)
        store = ChunkStore(work_dir / "folds")
        cv = cross_val_probs(images, labels, len(table.classes), p.classifier, folds=folds, store=store,
                             groups=duplicate_groups(ds, table))
        store.save(FEATURES_KEY, {"ids": np.array(table.ids), "features": cv.features})
        quality, is_issue = score_labels(labels, cv.pred_probs, p.filter_by, p.quality_method)
        write_fields(ds, table, cv.pred_probs, quality, is_issue)
        return summarize(table, labels, cv.pred_probs, quality, is_issue, folds)


def write_fields(ds: fo.Dataset, table: SampleTable, pred_probs: np.ndarray, quality: np.ndarray,
                 is_issue: np.ndarray) -> None:
    declare_fields(ds)
    best = pred_probs.argmax(axis=1)
    suggested = [fo.Classification(label=table.classes[b], confidence=float(pr[b])) for b, pr in zip(best, pred_probs)]
    set_field(ds, schema.LABEL_QUALITY, table.ids, [float(q) for q in quality])
    set_field(ds, schema.IS_LABEL_ISSUE, table.ids, [bool(f) for f in is_issue])
    set_field(ds, schema.SUGGESTED_LABEL, table.ids, suggested)
    set_field(ds, schema.OOF_PROBS, table.ids, np.round(pred_probs.astype(np.float64), 6).tolist())


def declare_fields(ds: fo.Dataset) -> None:
    have = ds.get_field_schema()
    wanted = {
        schema.LABEL_QUALITY: dict(ftype=fo.FloatField),
        schema.IS_LABEL_ISSUE: dict(ftype=fo.BooleanField),
        schema.SUGGESTED_LABEL: dict(ftype=fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification),
        schema.OOF_PROBS: dict(ftype=fo.ListField, subfield=fo.FloatField),
    }
    for name, kwargs in wanted.items():
        if name not in have:
            ds.add_sample_field(name, **kwargs)


def summarize(table: SampleTable, labels: np.ndarray, pred_probs: np.ndarray, quality: np.ndarray,
              is_issue: np.ndarray, folds: int) -> dict:
    best = pred_probs.argmax(axis=1)
    flagged = np.flatnonzero(is_issue)
    worst = np.argsort(quality, kind="stable")[:TOP_N]
    pairs = Counter(f"{table.classes[labels[i]]}->{table.classes[best[i]]}" for i in flagged)
    accuracy = float(np.mean(best == labels))
    summary = {
        "total": len(table),
        "flagged": int(len(flagged)),
        "top": [{"id": table.ids[i], "filepath": table.filepaths[i], "label": table.labels[i],
                 "score": round(float(quality[i]), 4), "suggested": table.classes[best[i]]} for i in worst],
        "flagged_per_class": {c: int(np.sum(is_issue & (labels == k))) for k, c in enumerate(table.classes)},
        "flagged_per_split": dict(Counter(table.splits[i] for i in flagged)),
        "flagged_given_to_suggested": dict(pairs.most_common(10)),
        "oof_accuracy": round(accuracy, 4),
        "folds_used": folds,
    }
    per_class = np.bincount(labels, minlength=len(table.classes))
    median = int(np.median(per_class[per_class > 0]))
    if median < RELIABLE_PER_CLASS:
        summary["warning"] = (f"only ~{median} images per class: the out-of-fold classifier is weak "
                              f"(accuracy {accuracy:.0%}), so treat these flags as hints")
    return summary


def classifier_features(ds: fo.Dataset) -> tuple[list[str], np.ndarray]:
    """The label-issue classifier's penultimate features: ``(sample ids, array (N, D))``.

    All rows come from one model (the fold-0 model, trained on the other K-1 folds), so they
    share one space. They are read from the work folder of the last complete run of this
    signal; a one-line error says to run it when there is none.
    """
    record = computed(ds).get(NAME)
    folder = work_dir_for(ds, NAME, record["fingerprint"]) / "folds" if record else None
    if folder is None or not (folder / f"{FEATURES_KEY}.npz").is_file():
        raise FercurateError(f"no classifier features for dataset '{ds.name}'; "
                             f"run 'fercurate compute {NAME}' first")
    saved = ChunkStore(folder).load(FEATURES_KEY)
    return saved["ids"].tolist(), saved["features"]
