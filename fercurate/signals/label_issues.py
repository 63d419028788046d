"""The ``label_issues`` signal: out-of-fold probabilities of a CNN trained here, scored with the estimated label noise.

Every image, in every split (FER2013's test labels are as noisy as its training labels),
is scored by models that did not see its label: stratified K-fold cross-validation of
the classifier in :mod:`fercurate.signals.classifier`, one resumable fold at a time
(:mod:`fercurate.signals.crossval`). The folds keep each duplicate group together, so
the signal requires ``duplicates``: a copy of an image in the training folds would hand
it its own label and hide the issue.
The given labels are then scored by Bayes' rule with the data set's noise matrix as
confident learning estimates it (:mod:`fercurate.signals.noise_model`, cleanlab's
``estimate_latent``): the label quality is the probability that the given label is right
given the image and how often labels of that class are wrong; as many labels as
cleanlab estimates are wrong (``cleanlab.count.num_label_issues``) are flagged, the least
likely right first. On FER2013 this finds the labels people dispute far better than
ranking by the model's own probability, which has learnt the systematic confusions too
(any ``cleanlab.rank`` method / ``cleanlab.filter`` rule can be chosen instead).
:mod:`fercurate.proposals` turns a flag into a relabel or a drop_ambiguous.

Fields: ``schema.LABEL_QUALITY`` (score), ``schema.IS_LABEL_ISSUE`` (flag),
``schema.SUGGESTED_LABEL`` (the out-of-fold argmax with its probability) and
``schema.OOF_PROBS`` (probabilities in ``dataset.info[INFO_CLASSES]`` order), which a
frozen version hands ``training`` as each sample's ``soft_label``: against the crowd's vote
shares on FER2013's val split they are closer than the noise posterior is (cross-entropy
1.09 vs 1.17-1.18, ``bench/curation_quality.py``), so the ranking uses the posterior and
the soft labels use the probabilities.

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
from fercurate.signals.base import ChunkStore, FieldWrite, SampleTable, Signal, SignalResult, work_dir_for
from fercurate.signals.classifier import ClassifierParams, load_images
from fercurate.signals.crossval import cross_val_probs, default_workers
from fercurate.signals.noise_model import (
    EVIDENCE_POWER, NOISE_POSTERIOR, NoiseEstimate, count_label_issues, estimate_noise, label_quality, noise_summary,
)

NAME = "label_issues"
FEATURES_KEY = "features"   # ChunkStore key of the fold-0 model's features (+ sample ids)
TOP_N = 10
#: below this median number of images per class, a classifier trained from scratch is too
#: weak for its disagreements to mean much; the summary then says so
RELIABLE_PER_CLASS = 200


@dataclass
class LabelIssueParams:
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    #: the label quality: "noise_posterior" (P(given label right | image, estimated noise),
    #: :mod:`~fercurate.signals.noise_model`) or a cleanlab.rank.get_label_quality_scores method
    quality_method: str = NOISE_POSTERIOR
    #: what flags an issue: "noise_posterior" (as many labels as cleanlab estimates are wrong,
    #: ``cleanlab.count.num_label_issues``, the least likely right first) or a
    #: cleanlab.filter.find_label_issues ``filter_by`` rule (e.g. "prune_by_noise_rate")
    filter_by: str = NOISE_POSTERIOR
    #: exponent of the out-of-fold probabilities in the posterior: < 1 trusts the image less
    #: than the noise prior (the net is over-sure of the confusions it learnt; noise_model)
    evidence_power: float = EVIDENCE_POWER
    #: cross-validation rounds: round 2 trains again without the labels round 1 flagged (each
    #: image still scored by models that never saw its label), so it learns less of the noise
    rounds: int = 1


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


def score_labels(labels: np.ndarray, pred_probs: np.ndarray, params: LabelIssueParams | None = None
                 ) -> tuple[np.ndarray, np.ndarray, NoiseEstimate]:
    """Label quality (lower = more likely wrong), issue flags and the estimated noise.

    By default the quality is the noise-aware posterior (:mod:`~fercurate.signals.noise_model`),
    the probability that the given label is right, and the flags are as many labels as
    confident learning estimates are wrong (``cleanlab.count.num_label_issues``): the least
    likely right ones. Counting with cleanlab and choosing with the posterior keeps the number
    of flags stable across models, where a fixed posterior threshold is not (an uncertain
    model flags few). Any cleanlab ranking method / filter can be chosen instead. A class in
    the class list that no sample carries is fine."""
    p = params or LabelIssueParams()
    estimate = estimate_noise(labels, pred_probs)
    if p.quality_method == NOISE_POSTERIOR:
        quality = label_quality(labels, pred_probs, estimate.noise, p.evidence_power)
    else:
        quality = get_label_quality_scores(labels, pred_probs, method=p.quality_method)
    if p.filter_by == NOISE_POSTERIOR:
        posterior_quality = quality if p.quality_method == NOISE_POSTERIOR else \
            label_quality(labels, pred_probs, estimate.noise, p.evidence_power)
        is_issue = np.zeros(len(labels), dtype=bool)
        is_issue[np.argsort(posterior_quality, kind="stable")[:count_label_issues(labels, pred_probs)]] = True
    else:
        # n_jobs=1: cleanlab's default forks a multiprocessing.Pool, and a fork from a process
        # that already runs torch/MongoDB threads can deadlock (it hung a CI run for 80 min).
        # The result does not depend on n_jobs, and per-class pruning of 7 classes is fast.
        is_issue = find_label_issues(labels, pred_probs, filter_by=p.filter_by, n_jobs=1)
    return quality, np.asarray(is_issue, dtype=bool), estimate


@register
class LabelIssues(Signal):
    """cleanlab label quality from out-of-fold probabilities of a CNN trained here."""

    name = NAME
    requires = ("duplicates",)
    uses_labels = True
    #: folds trained at once, in processes (not a parameter: the result does not depend on it)
    workers: int = default_workers()

    def default_params(self) -> LabelIssueParams:
        return LabelIssueParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p = self.params
        labels = label_indices(table)
        folds = folds_for(labels, table.classes, p.classifier.folds)
        images = load_images(table.filepaths, p.classifier.image_size)
        store = ChunkStore(work_dir / "folds")
        groups = duplicate_groups(ds, table)
        cv = cross_val_probs(images, labels, len(table.classes), p.classifier, folds=folds, store=store,
                             groups=groups, workers=self.workers)
        store.save(FEATURES_KEY, {"ids": np.array(table.ids), "features": cv.features})
        quality, is_issue, noise = score_labels(labels, cv.pred_probs, p)
        flagged_by_round = [int(is_issue.sum())]
        for r in range(2, p.rounds + 1):
            cv = cross_val_probs(images, labels, len(table.classes), p.classifier, folds=folds,
                                 store=ChunkStore(work_dir / f"folds-round{r}"), groups=groups,
                                 workers=self.workers, trainable=~is_issue, desc=f"cross-validation round {r}")
            quality, is_issue, noise = score_labels(labels, cv.pred_probs, p)
            flagged_by_round.append(int(is_issue.sum()))
        summary = summarize(table, labels, cv.pred_probs, quality, is_issue, folds)
        summary["estimated_label_noise"] = noise_summary(noise, table.classes)
        if p.rounds > 1:
            summary["flagged_by_round"] = flagged_by_round
        return SignalResult(summary, label_fields(table, cv.pred_probs, quality, is_issue))


def label_fields(table: SampleTable, pred_probs: np.ndarray, quality: np.ndarray,
                 is_issue: np.ndarray) -> list[FieldWrite]:
    best = pred_probs.argmax(axis=1)
    suggested = [fo.Classification(label=table.classes[b], confidence=float(pr[b])) for b, pr in zip(best, pred_probs)]
    return [
        FieldWrite(schema.LABEL_QUALITY, fo.FloatField, [float(q) for q in quality]),
        FieldWrite(schema.IS_LABEL_ISSUE, fo.BooleanField, [bool(f) for f in is_issue]),
        FieldWrite(schema.SUGGESTED_LABEL, fo.EmbeddedDocumentField, suggested,
                   kwargs={"embedded_doc_type": fo.Classification}),
        FieldWrite(schema.OOF_PROBS, fo.ListField, np.round(pred_probs.astype(np.float64), 6).tolist(),
                   kwargs={"subfield": fo.FloatField}),
    ]


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
