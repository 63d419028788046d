"""bench/label_noise_ceiling.py: the oracle noise matrix, the best policy over a posterior and
the simulated stronger model, on planted systematic confusions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import label_noise_ceiling as lnc  # noqa: E402


def test_the_oracle_noise_matrix_counts_given_labels_per_true_class():
    given = np.array([0, 0, 1, 2])
    truth = np.array([0, 1, 1, 1])
    t = lnc.oracle_noise(given, truth, 3)
    np.testing.assert_allclose(t[:, 0], [1, 0, 0])
    np.testing.assert_allclose(t[:, 1], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(t[:, 2], [0, 0, 1])  # no true sample of class 2: identity column


def test_the_best_policy_keeps_the_most_certain_posteriors_with_their_argmax():
    post = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.3, 0.7]])
    given = np.array([0, 0, 1, 1])
    truth = np.array([0, 1, 1, 0])
    got = lnc.best_policy(post, given, truth, 0.75)  # keeps rows 0, 1, 3
    assert got["relabelled"] == 1                     # row 1: 0 -> 1, which the crowd says
    assert got["relabel_right"] == 1.0
    assert got["accuracy_vs_crowd_kept"] == round(2 / 3, 4)  # row 3 keeps a label the crowd disputes
    assert lnc.kept_accuracy(np.array([0.1, 0.9, 0.5]), np.array([False, True, False]), 2 / 3) == 0.5


def _planted(n: int = 3000, seed: int = 0):
    """Three classes; half the true class-0 faces ("neutral") carry label 2 ("fear"), and a
    model fitted to those labels learnt the confusion: its probabilities are the noisy ones."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    given = truth.copy()
    confused = (truth == 0) & (rng.random(n) < 0.5)
    given[confused] = 2
    clean = np.eye(3)[truth] * 0.7 + 0.1
    clean = clean + rng.dirichlet(np.ones(3), size=n) * 0.6
    clean /= clean.sum(1, keepdims=True)
    noise = lnc.oracle_noise(given, truth, 3)
    probs = clean @ noise.T
    return given, truth, probs / probs.sum(1, keepdims=True), clean


def test_on_planted_systematic_confusion_the_oracle_matrix_ranks_at_least_as_well_as_confident_learning():
    given, truth, probs, clean = _planted()
    rows = np.arange(len(given))
    got = lnc.class_noise_rows(given, probs, rows, truth)
    oracle, cl = got["oracle_class_noise@power1"], got["confident_learning@power1"]
    assert oracle["ranking"]["disputed"] == int((given != truth).sum()) > 0
    assert oracle["ranking"]["auroc"] > 0.6
    assert oracle["ranking"]["auroc"] >= cl["ranking"]["auroc"] - 0.01
    # a model that learnt the confusion gives the posterior no reason to relabel: the cap
    assert oracle["best_policy"]["0.75"]["relabelled"] == 0
    # one that sees what people see does: the oracle's policy relabels "fear" back to class 0
    best = lnc.class_noise_rows(given, clean, rows, truth)["oracle_class_noise@power1"]["best_policy"]["0.75"]
    assert best["relabelled"] > 0 and best["relabel_right"] > 0.8


def test_a_model_that_agrees_more_with_people_ranks_their_disputes_better():
    given, truth, probs, _ = _planted(seed=1)
    rows = np.arange(0, len(given), 2)                # only some images carry votes
    votes = np.eye(3)[truth[rows]]
    curve = lnc.stronger_model_rows(given, probs, rows, truth[rows], votes)
    assert [c["blend"] for c in curve] == list(lnc.BLENDS)
    accuracy = [c["model_accuracy_vs_crowd"] for c in curve]
    assert accuracy == sorted(accuracy) and accuracy[-1] > accuracy[0]
    assert curve[0]["model_accuracy_vs_crowd"] == round(float(np.mean(probs[rows].argmax(1) == truth[rows])), 4)
    assert curve[-1]["auroc"] > curve[0]["auroc"]
