"""The post-fine-tune rebalance: a rare class the fine-tune stopped predicting comes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from training import rebalance
from training.models import create_model


def _scores(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a decent 4-class model on data where class 3 is rare (5 %), and the true labels."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.4, 0.3, 0.25, 0.05])
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), y] += 2.5
    return logits, y


def _recall(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    return float((scores[y == k].argmax(1) == k).mean())


def test_offsets_give_back_the_shares_and_the_recall_of_a_class_the_fine_tune_suppressed():
    before, y = _scores()
    after = before.copy()
    after[:, 3] -= 3.5            # what adversarial training does to a rare class: its logit sinks
    after[:, 0] += 0.5            # and the majority class gains
    assert _recall(after, y, 3) < 0.1 <= 0.5 * _recall(before, y, 3)
    target = rebalance.predicted_shares(before)
    offsets = rebalance.fit_class_offsets(after, target)
    fixed = after + offsets
    assert np.abs(rebalance.predicted_shares(fixed) - target).sum() / 2 < 0.01
    assert _recall(fixed, y, 3) >= 0.9 * _recall(before, y, 3)
    assert (fixed.argmax(1) == y).mean() > (after.argmax(1) == y).mean()
    assert abs(offsets.mean()) < 1e-9 and offsets[3] - offsets[0] > 3.0   # centred; the rare class raised


def test_offsets_are_zero_when_the_shares_already_match():
    scores, _ = _scores(seed=1)
    offsets = rebalance.fit_class_offsets(scores, rebalance.predicted_shares(scores))
    assert np.allclose(offsets, 0)


def test_the_offsets_land_in_the_classifier_bias_and_move_the_logits_by_exactly_them():
    torch.manual_seed(0)
    model = create_model("conv_transformer_student", 7).eval()
    x = torch.rand(4, 1, 48, 48)
    offsets = np.linspace(-1, 1, 7)
    with torch.no_grad():
        before = model(x)
        rebalance.add_class_offsets(model, offsets)
        after = model(x)
    assert torch.allclose(after - before, torch.as_tensor(offsets, dtype=after.dtype).expand_as(after), atol=1e-5)


def test_a_model_without_a_linear_classifier_is_refused_by_name():
    with pytest.raises(ValueError, match="Sequential has no linear classifier with 7 outputs"):
        rebalance.classifier_layer(nn.Sequential(nn.Conv2d(1, 7, 3), nn.Flatten()), 7)
