"""The noise-aware label quality: Bayes' rule with cleanlab's estimated noise matrix.

The data are out-of-fold probabilities as a model trained on noisy labels gives them: it
has learnt a systematic confusion (a third of class 0's images filed under class 2) along
with the classes, so on those images the given label keeps a fair probability.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from fercurate.signals import noise_model
from fercurate.signals.label_issues import LabelIssueParams, score_labels

CLASSES = ["calm", "dotted", "spiky"]


def systematic(n: int = 900, seed: int = 0):
    """True classes 0/1/2; a third of class 0 is labelled 2. The model's probabilities are
    what a net trained on these labels learns: class-0 faces get some class-2 probability."""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(3), n // 3)
    given = true.copy()
    confused = (true == 0) & (rng.random(n) < 1 / 3)
    given[confused] = 2
    base = {0: [0.60, 0.05, 0.35], 1: [0.05, 0.90, 0.05], 2: [0.10, 0.05, 0.85]}
    probs = np.array([base[t] for t in true]) * rng.uniform(0.8, 1.2, (n, 3))
    return given, probs / probs.sum(1, keepdims=True), confused


def test_the_confused_labels_rank_below_the_clean_ones_and_the_matrix_names_the_confusion():
    given, probs, confused = systematic()
    est = noise_model.estimate_noise(given, probs)
    assert np.allclose(est.noise.sum(0), 1) and np.allclose(est.inverse.sum(0), 1)
    # class 2's labels hide class-0 images: P(true = 0 | given = 2) is the largest off-diagonal entry
    off = est.inverse.copy()
    np.fill_diagonal(off, 0)
    assert np.unravel_index(off.argmax(), off.shape) == (0, 2)
    quality = noise_model.label_quality(given, probs, est.noise)
    assert ((quality >= 0) & (quality <= 1)).all()
    assert roc_auc_score(confused, -quality) > 0.95
    summary = noise_model.noise_summary(est, CLASSES)
    assert summary["spiky"]["right"] < summary["dotted"]["right"]
    assert next(iter(summary["spiky"]["else"])) == "calm"


def test_a_noisy_class_needs_stronger_evidence_than_a_clean_one():
    """Same model probability for the given label, different classes: the class whose labels
    are often wrong gets the lower quality; the model's own confidence cannot tell them apart."""
    given, probs, _ = systematic()
    p = np.array([[0.3, 0.2, 0.5], [0.3, 0.5, 0.2]])      # 0.5 for the given label in both
    labels = np.concatenate([given, [2, 1]])
    allp = np.concatenate([probs, p])
    quality = noise_model.label_quality(labels, allp)
    assert quality[-2] < quality[-1]


def test_a_class_nobody_carries_keeps_an_identity_column():
    given, probs, _ = systematic()
    probs4 = np.concatenate([probs * 0.97, np.full((len(probs), 1), 0.03)], axis=1)
    est = noise_model.estimate_noise(given, probs4)
    assert est.noise.shape == (4, 4) and est.noise[3, 3] == 1 and est.noise[:3, 3].sum() == 0
    assert np.isfinite(noise_model.label_quality(given, probs4, est.noise)).all()


def test_flags_are_as_many_as_cleanlab_counts_and_the_least_likely_right():
    given, probs, confused = systematic()
    quality, is_issue, _ = score_labels(given, probs)
    from cleanlab.count import num_label_issues
    assert is_issue.sum() == num_label_issues(given, probs) > 0
    assert quality[is_issue].max() <= quality[~is_issue].min()
    assert confused[is_issue].mean() > 0.8
    # any cleanlab rule can be chosen instead
    q2, flags2, _ = score_labels(given, probs, LabelIssueParams(quality_method="self_confidence",
                                                              filter_by="prune_by_noise_rate"))
    assert np.allclose(q2, probs[np.arange(len(given)), given]) and flags2.dtype == bool


def test_cleanlab_filters_run_in_this_process(monkeypatch):
    """cleanlab forks a multiprocessing.Pool by default; a fork from a process that runs
    torch/MongoDB threads can deadlock (a CI run hung on it), so fercurate asks for n_jobs=1."""
    import multiprocessing

    def no_fork(*a, **k):
        raise AssertionError("cleanlab forked a multiprocessing.Pool")
    monkeypatch.setattr(multiprocessing, "Pool", no_fork)
    given, probs, _ = systematic()
    for rule in ("prune_by_noise_rate", "prune_by_class", "both"):
        _, flags, _ = score_labels(given, probs, LabelIssueParams(quality_method="self_confidence", filter_by=rule))
        assert flags.any()


def test_tempering_softens_the_image_evidence_and_power_one_is_plain_bayes():
    given, probs, _ = systematic()
    soft = noise_model.temper(probs, 0.5)
    assert np.allclose(soft.sum(1), 1) and np.array_equal(noise_model.temper(probs, 1), probs)
    entropy = lambda p: -(p * np.log(p)).sum(1)  # noqa: E731
    assert (entropy(soft) > entropy(probs)).all()
    est = noise_model.estimate_noise(given, probs)
    plain = est.noise[given] * probs
    plain = (plain / plain.sum(1, keepdims=True))[np.arange(len(given)), given]
    assert np.allclose(noise_model.label_quality(given, probs, est.noise, power=1.0), plain)


def test_a_lower_power_lets_the_noise_prior_weigh_more():
    """An over-sure image of the noisy class ('spiky', a third of whose labels hide 'calm'
    faces) loses more quality from tempering than the same-looking image of a clean class."""
    given, probs, _ = systematic()
    p = np.array([[0.10, 0.02, 0.88], [0.02, 0.88, 0.10]])
    labels = np.concatenate([given, [2, 1]])
    allp = np.concatenate([probs, p])
    est = noise_model.estimate_noise(labels, allp)
    full = noise_model.label_quality(labels, allp, est.noise, power=1.0)[-2:]
    tempered = noise_model.label_quality(labels, allp, est.noise, power=0.5)[-2:]
    assert full[0] - tempered[0] > 0.02                 # the noisy class's label is doubted more ...
    assert abs(full[1] - tempered[1]) < 0.25 * (full[0] - tempered[0])  # ... the clean class's hardly
