"""Adversarial fine-tuning moves the loss; robust evaluation reports every attack and eps."""

from __future__ import annotations

import copy

import pytest
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


@pytest.mark.parametrize("method", ["pgd", "trades", "anchored"])
def test_one_adversarial_step_lowers_the_loss(method):
    model = _tiny_net()
    x, y = _batch()
    w = torch.ones(16)
    attack = adversarial.make_attack(model, method, eps=4 / 255, steps=2)
    anchor = _tiny_net().eval()                # another network's predictions to move toward

    def loss():
        torch.manual_seed(5)                   # same attack start: only the weights differ
        if method == "pgd":
            return adversarial.adversarial_loss(model, attack, x, y, w, adv_weight=0.5)
        if method == "anchored":
            return adversarial.anchored_loss(model, anchor, attack, x, w, adv_weight=0.5)
        return adversarial.trades_loss(model, attack, x, y, w, beta=6.0)

    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss().item() < before.item()
    assert model.training                      # the attack ran in eval mode and gave training mode back


def test_robust_accuracy_reports_fgsm_and_pgd_per_eps():
    model = _tiny_net()
    x, y = _batch()
    r = adversarial.robust_accuracy(model, x, y, eps_list=(1, 8), pgd_steps=2, batch_size=8)
    assert set(r["fgsm"]) == set(r["pgd"]) == {"1/255", "8/255"}
    assert r["n_images"] == 16
    assert r["pgd"]["8/255"] <= r["clean"]


def test_robust_accuracy_with_apgd_and_restarts_reports_the_worst_case_per_image():
    model = _tiny_net()
    x, y = _batch()
    r = adversarial.robust_accuracy(model, x, y, eps_list=(2, 8), pgd_steps=3, batch_size=8, pgd_restarts=2,
                                    apgd_steps=3, n_classes=7)
    assert {"fgsm", "pgd", "apgd_ce", "apgd_t_dlr", "worst"} <= set(r) and r["pgd_restarts"] == 2
    for eps in ("2/255", "8/255"):
        # an image counts only if it survives every attack: never above any one of them
        assert r["worst"][eps] <= min(r[a][eps] for a in ("fgsm", "pgd", "apgd_ce", "apgd_t_dlr")) <= r["clean"]
    assert r["worst"]["8/255"] <= r["worst"]["2/255"]
    assert isinstance(r["masking"], list)



def test_robust_eval_progress_ticks_once_per_batch_eps_and_attack(monkeypatch):
    """A full-strength eval runs for an hour on 2 cores: its bar must move per attack, not per batch."""
    bars = []

    class Recording(adversarial.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.ticks, self.postfixes = 0, []
            bars.append(self)

        def update(self, n=1):
            self.ticks += n
            return super().update(n)

        def set_postfix_str(self, s="", refresh=True):
            self.postfixes.append(s)
            return super().set_postfix_str(s, refresh)

    monkeypatch.setattr(adversarial, "tqdm", Recording)
    model = _tiny_net()
    x, y = _batch()
    adversarial.robust_accuracy(model, x, y, eps_list=(1, 8), pgd_steps=2, batch_size=8, apgd_steps=2, n_classes=7)
    (bar,) = bars
    # 2 batches x 2 eps x 4 attacks (fgsm, pgd, apgd_ce, apgd_t_dlr), and the bar says which is running
    assert bar.total == bar.ticks == 16
    assert "apgd_t_dlr 8/255, images 8-16" in bar.postfixes

class _Counting(nn.Module):
    """The wrapped net, counting the images it is run on (attack cost)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.seen = net, 0

    def forward(self, x):
        self.seen += len(x)
        return self.net(x)


def test_nested_robust_accuracy_attacks_only_the_images_still_standing():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7)).eval()   # its answer depends on the pixels
    x, _ = _batch()
    with torch.no_grad():
        y = net(x).argmax(-1)                  # every image correct: all are attacked at the first eps
    model = _Counting(net)
    kwargs = dict(eps_list=(32, 2), pgd_steps=3, batch_size=8, pgd_restarts=2, apgd_steps=3, n_classes=7)
    flat = adversarial.robust_accuracy(model, x, y, **kwargs)
    flat_cost, model.seen = model.seen, 0
    nested = adversarial.robust_accuracy(model, x, y, nested=True, **kwargs)
    assert nested["nested"] and not flat["nested"] and nested["clean"] == 1.0
    assert list(nested["pgd"]) == ["2/255", "32/255"]           # smallest eps first
    for attack in ("fgsm", "pgd", "apgd_ce", "apgd_t_dlr", "worst"):
        # an example found inside the small ball lies inside the large one: never more robust at 32
        assert nested[attack]["32/255"] <= nested[attack]["2/255"] <= 1.0
    assert nested["worst"]["2/255"] <= min(nested[a]["2/255"] for a in ("fgsm", "pgd", "apgd_ce", "apgd_t_dlr"))
    assert nested["pgd"]["2/255"] < 1.0 and model.seen < flat_cost    # broken images are not attacked again


def test_masking_is_flagged_where_apgd_or_one_step_fgsm_beats_pgd():
    result = {"pgd": {"1/255": 0.40, "4/255": 0.30, "8/255": 0.20},
              "fgsm": {"1/255": 0.45, "4/255": 0.35, "8/255": 0.10},      # one step beats PGD at 8: masking
              "apgd_ce": {"1/255": 0.30, "4/255": 0.29, "8/255": 0.18},   # APGD 10 points below PGD at 1
              "apgd_t_dlr": {"1/255": 0.39, "4/255": 0.28, "8/255": 0.19}}
    assert adversarial.masking_eps(result) == ["1/255", "8/255"]
    assert adversarial.masking_eps({"pgd": {"1/255": 0.4}, "fgsm": {"1/255": 0.39}}) == []


def test_trades_is_clean_cross_entropy_plus_beta_times_the_kl_to_the_attacked_prediction():
    model = _tiny_net().eval()                 # eval: batch-norm statistics do not depend on the batch
    x, y = _batch()
    w = torch.rand(16, generator=torch.Generator().manual_seed(2)) + 0.5
    ce = (w / w.sum() * F.cross_entropy(model(x), y, reduction="none")).sum()
    no_ball = adversarial.make_attack(model, "trades", eps=0.0, steps=2)   # x_adv == x: the KL term is 0
    torch.testing.assert_close(adversarial.trades_loss(model, no_ball, x, y, w, beta=6.0), ce)
    attack = adversarial.make_attack(model, "trades", eps=8 / 255, steps=3)
    torch.manual_seed(3)
    small = adversarial.trades_loss(model, attack, x, y, w, beta=1.0)
    torch.manual_seed(3)                       # same TPGD start: the same x_adv, a larger beta
    large = adversarial.trades_loss(model, attack, x, y, w, beta=6.0)
    kl = (large - small) / 5.0
    assert kl.item() > 0 and torch.isclose(small, ce + kl, atol=1e-5)


def test_anchored_loss_is_zero_at_the_anchor_and_grows_with_the_attack():
    model = _tiny_net().eval()
    x, _ = _batch()
    w = torch.ones(16)
    anchor = copy.deepcopy(model)
    no_ball = adversarial.make_attack(model, "anchored", eps=0.0, steps=2)
    assert adversarial.anchored_loss(model, anchor, no_ball, x, w, adv_weight=0.5).abs().item() < 1e-6
    attacked = adversarial.anchored_loss(model, anchor, adversarial.make_attack(model, "anchored", 8 / 255, 3), x, w, 1.0)
    assert attacked.item() > 1e-6


def _separable_batch():
    """Faces of three 'emotions' told apart by brightness, the third rare (2 of 24)."""
    g = torch.Generator().manual_seed(4)
    level = torch.tensor([0.15] * 11 + [0.5] * 11 + [0.85] * 2)
    x = (level[:, None, None, None] + 0.05 * torch.randn(24, 1, 48, 48, generator=g)).clamp(0, 1)
    return x, torch.tensor([0] * 11 + [1] * 11 + [2] * 2)


def test_anchored_fine_tuning_keeps_a_rare_class_that_label_following_pgd_gives_up():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 3))
    x, y = _separable_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):                       # the "distilled" model: every class right
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model(x).argmax(-1) == y).all()
    noisy = y.clone()
    noisy[-2:] = 1                             # the rare class's labels are noisy, as FER2013's disgust is
    w = torch.ones(24)
    kept = {}
    for method in ("pgd", "anchored"):
        net, anchor = copy.deepcopy(model), copy.deepcopy(model).eval()
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        attack = adversarial.make_attack(net, method, eps=4 / 255, steps=2)
        for _ in range(60):
            opt.zero_grad()
            loss = (adversarial.anchored_loss(net, anchor, attack, x, w, 0.5) if method == "anchored"
                    else adversarial.adversarial_loss(net, attack, x, noisy, w, 0.5))
            loss.backward()
            opt.step()
        with torch.no_grad():
            kept[method] = int((net(x).argmax(-1)[-2:] == 2).sum())
    assert kept == {"pgd": 0, "anchored": 2}


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="anchored, trades, pgd"):
        adversarial.make_attack(_tiny_net(), "fgsm-at", eps=4 / 255, steps=1)


def test_the_report_warns_about_a_student_that_predicts_one_class_for_most_faces():
    from training.report import collapse_warnings

    classes = ["angry", "happy", "sad"]
    healthy = [[8, 1, 1], [1, 8, 1], [2, 1, 7]]
    collapsed = [[1, 9, 0], [0, 10, 0], [0, 9, 1]]          # 28 of 30 predictions are "happy"
    metrics = {"students": {"ce": {"distilled": {"test": {"curated": {"confusion_matrix": healthy}}},
                                   "adversarial": {"test": {"curated": {"confusion_matrix": collapsed}}}}}}
    lines = [line for line in collapse_warnings(metrics, classes) if line]
    assert len(lines) == 1 and "`ce` (robust) predicts happy for 93%" in lines[0] and "--adv-eps" in lines[0]
    metrics["students"]["ce"]["distilled"]["test"]["curated"]["confusion_matrix"] = collapsed
    lines = [line for line in collapse_warnings(metrics, classes) if line]
    assert len(lines) == 2 and "`ce` (distilled)" in lines[0] and "train longer" in lines[0]
    metrics["students"]["ce"]["distilled"]["test"]["curated"]["confusion_matrix"] = healthy
    metrics["students"]["ce"]["adversarial"]["test"]["curated"]["confusion_matrix"] = healthy
    assert collapse_warnings(metrics, classes) == []
