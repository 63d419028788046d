"""How likely each given label is right, from out-of-fold probabilities and the data set's
estimated noise: Bayes' rule with cleanlab's noise matrix. Pure arrays, no database.

A classifier trained on noisy labels learns the noise too: on FER2013 it gives a face
labelled "fear" a fair "fear" probability even where people see "neutral", because half
the "fear" labels it trained on are such faces. Ranking labels by that probability alone
(cleanlab's ``self_confidence`` / ``normalized_margin``) therefore misses the systematic
confusions. Confident learning estimates the noise matrix ``T[i, j] = P(given = i | true = j)``
from the same probabilities (``cleanlab.count.estimate_latent`` on the confident joint).
The posterior of the true label given the image *and* its given label ``i`` is then

    P(true = j | x, given = i)  ∝  T[i, j] · p_j(x)

so a class whose labels are often wrong (low ``T[i, i]``) needs a stronger image to keep
its label, and the class it is usually confused with gains weight. The label quality is
the posterior of the given label: the model's estimate of the probability that the label
is right.

The image evidence is tempered, ``p_j(x) ** EVIDENCE_POWER`` renormalised: the same
network that learnt the confusions is over-sure of them (its probabilities come from the
noisy labels it fitted), so at full weight it drowns the noise prior for exactly the images
the prior is there for. On FER2013's val split, against crowd votes, a power of 0.5 lifts
the AUROC of the ranking from 0.894 to 0.898 and precision@250 from 0.91 to 0.96, on
either random half of the split alone as well; 0.3-0.6 all beat 1.0, sharper (>1) is
worse. Calibrating the power on the given labels instead (NLL) asks for *sharper*
probabilities: they reward fitting the noise, which is the opposite of the point. On FER2013's val split, scored against crowd votes (``bench/curation_quality.py``),
it ranks the labels people dispute better than cleanlab's ranking methods do (README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cleanlab.count import compute_confident_joint, estimate_latent, num_label_issues

#: the label quality of this method, next to cleanlab.rank's method names
NOISE_POSTERIOR = "noise_posterior"
#: exponent of the model's probabilities in the posterior (1 = untempered; see the module doc)
EVIDENCE_POWER = 0.5


@dataclass
class NoiseEstimate:
    """Confident learning's view of the given labels (cleanlab's ``estimate_latent``)."""

    noise: np.ndarray     # T[i, j] = P(given = i | true = j); columns sum to 1
    inverse: np.ndarray   # P(true = i | given = j); columns sum to 1


def _present_classes(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cleanlab needs every class it sees in ``pred_probs`` to carry a label: the classes
    present, the labels re-indexed onto them and their renormalised probability columns."""
    present = np.flatnonzero(np.bincount(labels, minlength=pred_probs.shape[1]) > 0)
    remap = np.full(pred_probs.shape[1], -1)
    remap[present] = np.arange(len(present))
    sub = pred_probs[:, present]
    return present, remap[labels], sub / np.clip(sub.sum(1, keepdims=True), 1e-12, None)


def estimate_noise(labels: np.ndarray, pred_probs: np.ndarray) -> NoiseEstimate:
    """The noise matrix and its inverse, estimated by confident learning.

    cleanlab counts the confident joint of the given labels and the out-of-fold
    probabilities and calibrates it to the given labels' class counts. A class no sample
    carries gets identity entries (nothing is known about its noise)."""
    present, sub_labels, sub_probs = _present_classes(labels, pred_probs)
    _, small, small_inv = estimate_latent(compute_confident_joint(sub_labels, sub_probs), sub_labels)
    noise, inverse = np.eye(pred_probs.shape[1]), np.eye(pred_probs.shape[1])
    noise[np.ix_(present, present)] = small
    inverse[np.ix_(present, present)] = small_inv
    return NoiseEstimate(noise, inverse)


def count_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> int:
    """cleanlab's estimate of how many given labels are wrong (``cleanlab.count.num_label_issues``,
    the off-diagonal of the confident joint)."""
    _, sub_labels, sub_probs = _present_classes(labels, pred_probs)
    return int(num_label_issues(sub_labels, sub_probs))


def temper(pred_probs: np.ndarray, power: float) -> np.ndarray:
    """``p ** power`` renormalised per row: below 1 softens, above 1 sharpens, 1 is a no-op."""
    if power == 1:
        return pred_probs
    p = np.clip(np.asarray(pred_probs, dtype=np.float64), 1e-12, None) ** power
    return p / p.sum(axis=1, keepdims=True)


def posterior(labels: np.ndarray, pred_probs: np.ndarray, noise: np.ndarray | None = None,
              power: float = EVIDENCE_POWER) -> np.ndarray:
    """``P(true = j | x, given label)`` for every sample (N, C), rows sum to 1; ``noise`` is
    ``T`` (estimated from ``labels`` and the untempered ``pred_probs`` when None); ``power``
    tempers the image evidence."""
    noise = estimate_noise(labels, pred_probs).noise if noise is None else noise
    pred_probs = temper(pred_probs, power)
    joint = noise[labels] * pred_probs
    total = joint.sum(axis=1, keepdims=True)
    # a row the noise matrix rules out entirely (never happens with cleanlab's estimate) keeps the model's view
    return np.where(total > 0, joint / np.clip(total, 1e-12, None), pred_probs)


def label_quality(labels: np.ndarray, pred_probs: np.ndarray, noise: np.ndarray | None = None,
                  power: float = EVIDENCE_POWER) -> np.ndarray:
    """The posterior probability that each given label is right (lower = more likely wrong)."""
    post = posterior(labels, pred_probs, noise, power)
    return post[np.arange(len(labels)), labels]


def noise_summary(estimate: NoiseEstimate, classes: list[str], top: int = 3) -> dict:
    """Per given class: the estimated share of its labels that are right, and what the wrong
    ones mostly are (``P(true | given)``), for people to read."""
    out = {}
    for i, name in enumerate(classes):
        row = estimate.inverse[:, i]
        others = [(classes[j], round(float(row[j]), 3)) for j in np.argsort(-row) if j != i and row[j] >= 0.01]
        out[name] = {"right": round(float(row[i]), 3), "else": dict(others[:top])}
    return out
