"""Give a fine-tuned student back the class shares it predicted before: one logit offset per class.

Adversarial training on a long-tailed data set gives up its rare classes first: the cheapest
robust answer for a class of 1.5 % of the faces (FER2013's disgust) is never to predict it
(Wu et al., CVPR 2021, "Adversarial robustness under long-tailed distribution", who move the
decision boundary at inference for this). On the ``cpu`` run PGD-AT took the distilled
student's disgust recall from 45 % to 5 %, while the fine-tuned network still *ranks*
disgust faces above the rest: its disgust logit is just shifted down.

So after the fine-tune, one offset per class is fitted, without labels, so that the
fine-tuned student's argmax picks each class on as many images as the distilled student did
on the same images (the run's val split), and the offsets are added to the classifier's
bias. The model keeps its architecture and ONNX graph; attacks and evaluation see the
offsets like any other weight. Pure arrays here; the stage feeds them
(:func:`training.stages.fine_tune`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

#: small share added before the logs, so a class nobody predicts still gets a finite step
_EPS = 1e-3


def predicted_shares(scores: np.ndarray) -> np.ndarray:
    """The share of rows whose argmax is each class (C,)."""
    scores = np.asarray(scores)
    return np.bincount(scores.argmax(axis=1), minlength=scores.shape[1]) / max(len(scores), 1)


def fit_class_offsets(log_probs: np.ndarray, target_shares: np.ndarray, iters: int = 300,
                      step: float = 0.5) -> np.ndarray:
    """Offsets ``b`` (C,) with ``predicted_shares(log_probs + b)`` as close to ``target_shares``
    as a damped multiplicative search finds (total variation; the best iterate is returned).

    Each step moves a class's offset by ``log(target) - log(predicted)``: a class predicted too
    rarely is raised, one predicted too often lowered; the step shrinks linearly to 0 so the
    search settles. Offsets are centred (mean 0): adding a constant to every logit changes nothing."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    target = np.asarray(target_shares, dtype=np.float64)
    b = np.zeros(log_probs.shape[1])
    best, best_tv = b.copy(), np.inf
    for it in range(iters):
        shares = predicted_shares(log_probs + b)
        tv = 0.5 * float(np.abs(shares - target).sum())
        if tv < best_tv:
            best, best_tv = b.copy(), tv
        if tv == 0:
            break
        b = b + step * (1 - it / iters) * (np.log(target + _EPS) - np.log(shares + _EPS))
    return best - best.mean()


def classifier_layer(model: nn.Module, num_classes: int) -> nn.Linear:
    """The model's last ``nn.Linear`` with ``num_classes`` outputs and a bias: where the offsets go."""
    heads = [m for m in model.modules()
             if isinstance(m, nn.Linear) and m.out_features == num_classes and m.bias is not None]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no linear classifier with {num_classes} outputs and a "
                         "bias to rebalance")
    return heads[-1]


def add_class_offsets(model: nn.Module, offsets: np.ndarray) -> None:
    """Adds ``offsets`` to the classifier's bias in place (logits move by exactly the offsets)."""
    head = classifier_layer(model, len(offsets))
    with torch.no_grad():
        head.bias.add_(torch.as_tensor(offsets, dtype=head.bias.dtype, device=head.bias.device))
