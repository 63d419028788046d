"""Adversarial fine-tuning moves the loss; robust evaluation reports every attack and eps."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training import adversarial


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 7))


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 1, 48, 48, generator=g), torch.randint(0, 7, (16,), generator=g)


def test_pgd_examples_raise_the_loss_and_stay_in_the_eps_ball():
    model = _tiny_net().eval()
    x, y = _batch()
    x_adv = adversarial.pgd_attack(model, eps=8 / 255, steps=3)(x, y)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_one_adversarial_step_changes_the_loss():
    model = _tiny_net()
    x, y = _batch()
    w = torch.ones(16)
    attack = adversarial.pgd_attack(model, eps=4 / 255, steps=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    torch.manual_seed(5)
    before = adversarial.adversarial_loss(model, attack, x, y, w, adv_weight=0.5)
    opt.zero_grad()
    before.backward()
    opt.step()
    torch.manual_seed(5)                       # same PGD random start: only the weights differ
    after = adversarial.adversarial_loss(model, attack, x, y, w, adv_weight=0.5)
    assert after.item() < before.item()
    assert model.training                      # the attack ran in eval mode and gave training mode back


def test_robust_accuracy_reports_fgsm_and_pgd_per_eps():
    model = _tiny_net()
    x, y = _batch()
    r = adversarial.robust_accuracy(model, x, y, eps_list=(1, 8), pgd_steps=2, batch_size=8)
    assert set(r["fgsm"]) == set(r["pgd"]) == {"1/255", "8/255"}
    assert r["n_images"] == 16
    assert r["pgd"]["8/255"] <= r["clean"]
