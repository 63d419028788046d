"""The rebalancing policy and the augmentation are what data.py says they are."""

from __future__ import annotations

import torch

from training.data import SplitData, augment, epoch_order


def _split(labels: list[int]) -> SplitData:
    n = len(labels)
    return SplitData(torch.zeros(n, 1, 48, 48, dtype=torch.uint8), torch.tensor(labels), torch.tensor(labels),
                     torch.ones(n), [f"{i}.png" for i in range(n)])


def test_oversample_repeats_each_class_by_its_factor_and_none_keeps_every_image_once():
    data = _split([0] * 10 + [1] * 10)
    policy = {"name": "oversample", "oversample_repeat": {"a": 1.0, "b": 3.0}}
    order = epoch_order(data, policy, ["a", "b"], seed=0, epoch=0)
    assert data.labels[order].bincount().tolist() == [10, 30]
    plain = epoch_order(data, {"name": "none"}, ["a", "b"], seed=0, epoch=0)
    assert sorted(plain.tolist()) == list(range(20))
    assert torch.equal(plain, epoch_order(data, {"name": "none"}, ["a", "b"], seed=0, epoch=0))
    assert not torch.equal(plain, epoch_order(data, {"name": "none"}, ["a", "b"], seed=0, epoch=1))


def test_fractional_oversampling_draws_the_remainder():
    data = _split([0] * 200)
    order = epoch_order(data, {"name": "oversample", "oversample_repeat": {"a": 1.5}}, ["a"], seed=1, epoch=0)
    assert 260 < len(order) < 340


def test_augmentation_is_seeded_small_and_keeps_the_range():
    x = torch.rand(8, 1, 48, 48)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > 0.01
