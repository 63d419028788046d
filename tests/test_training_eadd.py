"""EADD on hand-made cases: the teacher strong on an emotion dominates that emotion's target."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training import eadd

CFG = eadd.DistillConfig(temperature=2.0, alpha=0.5, tau_w=0.1, beta=1.0)


def _one_hot_logits(pred: list[int], num_classes: int, scale: float = 5.0) -> torch.Tensor:
    return F.one_hot(torch.tensor(pred), num_classes).float() * scale


def _val_case():
    """Teacher A is right on class 0 only, teacher B on class 1 only; both miss class 2."""
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    pred_a = [0] * 10 + [2] * 10 + [1] * 10
    pred_b = [2] * 10 + [1] * 10 + [0] * 10
    probs = torch.stack([torch.softmax(_one_hot_logits(pred_a, 3), -1), torch.softmax(_one_hot_logits(pred_b, 3), -1)])
    return probs, labels


def test_strength_is_per_class_f1_on_held_out_data():
    probs, labels = _val_case()
    s = eadd.teacher_strength(probs, labels, 3)
    assert s.shape == (2, 3)
    assert s[0, 0] == 1.0 and s[0, 1] == 0.0 and s[1, 1] == 1.0 and s[1, 0] == 0.0
    assert s[:, 2].tolist() == [0.0, 0.0]


def test_a_teacher_strong_on_one_class_dominates_that_class_target():
    probs, labels = _val_case()
    strength = eadd.teacher_strength(probs, labels, 3)
    # two new samples, one of class 0 and one of class 1; the teachers disagree and are equally confident
    logits = torch.stack([torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]),    # A says class 0
                          torch.tensor([[0.0, 3.0, 0.0], [0.0, 3.0, 0.0]])])   # B says class 1
    y = torch.tensor([0, 1])
    w = eadd.teacher_weights(logits, y, strength, CFG)
    assert w[0, 0] > 0.99 and w[1, 1] > 0.99             # A owns class 0, B owns class 1
    assert torch.allclose(w.sum(0), torch.ones(2))
    q = eadd.distill_target(logits, w, CFG.temperature)
    assert q[0].argmax() == 0 and q[1].argmax() == 1
    uniform = eadd.distill_target(logits, eadd.teacher_weights(logits, y, None, CFG), CFG.temperature)
    assert torch.allclose(uniform[0], uniform[1])       # uniform KD cannot tell the two emotions apart
    assert q[0, 0] > uniform[0, 0] and q[1, 1] > uniform[1, 1]


def test_with_equal_strength_the_teacher_confident_in_the_label_weighs_more():
    strength = torch.full((2, 3), 0.5)
    logits = torch.stack([torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 4.0]])])
    w = eadd.teacher_weights(logits, torch.tensor([0]), strength, CFG)
    assert w[0, 0] > 0.9
    no_conf = eadd.teacher_weights(logits, torch.tensor([0]), strength, eadd.DistillConfig(beta=0.0))
    assert torch.allclose(no_conf[:, 0], torch.tensor([0.5, 0.5]))


def test_loss_is_ce_without_target_and_adds_the_kl_term_with_one():
    torch.manual_seed(0)
    z = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 0, 1])
    w = torch.ones(5)
    assert torch.allclose(eadd.distill_loss(z, y, w, None, CFG), F.cross_entropy(z, y))
    matching = torch.softmax(z / CFG.temperature, -1)        # KL = 0 when the student already matches q
    assert torch.allclose(eadd.distill_loss(z, y, w, matching, CFG), (1 - CFG.alpha) * F.cross_entropy(z, y), atol=1e-6)
    other = torch.softmax(torch.randn(5, 3), -1)
    assert eadd.distill_loss(z, y, w, other, CFG) > eadd.distill_loss(z, y, w, matching, CFG)


def test_sample_weights_reweight_the_batch():
    z = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0])                                  # first sample right, second wrong
    light = eadd.distill_loss(z, y, torch.tensor([1.0, 0.1]), None, CFG)
    heavy = eadd.distill_loss(z, y, torch.tensor([0.1, 1.0]), None, CFG)
    assert heavy > light


def test_strength_is_a_running_estimate():
    old, new = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.allclose(eadd.update_strength(old, new, 0.75), torch.full((2, 3), 0.25))
