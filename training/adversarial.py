"""Adversarial fine-tuning (TRADES or PGD adversarial training) and robust evaluation, with torchattacks.

Two methods (``Profile.adv_method``), both on inputs in [0, 1], the range torchattacks
expects, so eps = 8/255 means 8 grey levels:

* ``pgd`` (default; Madry et al.'s PGD-AT, mixed with clean data so clean accuracy holds)::

      L = (1 - adv_weight) * CE_w(f(x), y) + adv_weight * CE_w(f(x_adv), y)

* ``trades`` (Zhang et al. 2019): torchattacks' TPGD finds x_adv within the L-inf ball that
  maximizes KL(f(x) || f(x_adv)), and::

      L = CE_w(f(x), y) + beta * KL_w(softmax f(x) || softmax f(x_adv))

* ``anchored`` (robust soft labels, after Zi et al. 2021's RSLAD): the distilled student, frozen
  at the start of the fine-tune, is the anchor; TPGD finds x_adv (no labels: FER2013's are
  noisy), and both the clean and the attacked prediction are pulled to the anchor's::

      L = (1 - adv_weight) * KL_w(a(x) || f(x)) + adv_weight * KL_w(a(x) || f(x_adv))

  Hard-label PGD-AT on the ``cpu`` run kept 5 % of the distilled student's disgust recall (45 %
  -> 5 %) and cost 4.7 points of clean accuracy: the cheapest robust answer for a rare class is
  never to predict it. Measured on one student (bench/results/adversarial_methods.json): the
  anchor keeps 1.1 points more clean accuracy and most classes' recall, for 1.8 points less
  worst-case accuracy at 2/255, but disgust still falls from 18 % to 2 %: not the default.

After any method, ``Profile.adv_rebalance`` (default on; :mod:`training.rebalance`) shifts each
class's logit so the fine-tuned student predicts every class on val as often as the distilled one
did, without labels: on the same student that gave PGD-AT back disgust (0 -> 15 % recall) and
1.5 points of clean accuracy.

(``_w``: weighted by the manifest's per-sample weights.) A short fine-tune must move gently:
on FER2013 a quarter epoch at lr 5e-4 pushed the students toward the trivial robust answer,
"happy" for most faces, with either method (PGD-AT: "happy" for 53-90 % of the test faces,
clean accuracy 56 % -> 31 % for the worst; TRADES beta = 6: "happy" for all, 25 %), because
a 4/255 attack is out of reach of a barely trained network; the ``cpu`` profile therefore
fine-tunes at 1e-4.

Evaluation: accuracy under FGSM, PGD (``pgd_restarts`` random starts: an image counts as
robust only if every start fails) and, with ``apgd_steps`` > 0, AutoAttack's two gradient
attacks as torchattacks implements them, APGD on cross-entropy and targeted APGD on the DLR
loss (Croce & Hein 2020), at each eps in ``eps_list`` (default {1, 2, 4, 8}/255). ``worst``
is the per-image worst case over every attack run: the honest robust accuracy. A model
whose PGD accuracy is well above APGD's, or whose FGSM accuracy is below PGD's (one step
beating many), is masking gradients rather than robust; ``masking`` lists those eps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks
from tqdm import tqdm

from training.profiles import ADV_METHODS

ROBUST_EPS: tuple[int, ...] = (1, 2, 4, 8)


def pgd_attack(model: nn.Module, eps: float, steps: int, eps_step: float | None = None) -> torchattacks.PGD:
    """torchattacks PGD with the step size defaulting to 2.5*eps/steps (Madry's rule of thumb)."""
    step = eps_step if eps_step is not None else 2.5 * eps / max(steps, 1)
    return torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=True)


METHODS = ADV_METHODS


def make_attack(model: nn.Module, method: str, eps: float, steps: int) -> torchattacks.Attack:
    """The training-time attack of ``method``: TPGD (KL ascent) for trades and anchored, PGD (CE
    ascent) for pgd."""
    if method == "pgd":
        return pgd_attack(model, eps, steps)
    if method in ("trades", "anchored"):
        return torchattacks.TPGD(model, eps=eps, alpha=2.5 * eps / max(steps, 1), steps=steps)
    raise ValueError(f"unknown adversarial method {method!r}; choose one of {', '.join(METHODS)}")


def trades_loss(model: nn.Module, attack: torchattacks.Attack, x: torch.Tensor, y: torch.Tensor,
                sample_weights: torch.Tensor, beta: float) -> torch.Tensor:
    """CE(clean) + beta * KL(f(x) || f(x_adv)), weighted mean over the batch (gradients through both)."""
    clean, adv, w = _clean_and_adversarial_logits(model, x, attack(x).detach(), sample_weights)
    loss_clean = (w * F.cross_entropy(clean, y, reduction="none")).sum()
    kl = F.kl_div(F.log_softmax(adv, dim=-1), F.softmax(clean, dim=-1), reduction="none").sum(-1)
    return loss_clean + beta * (w * kl).sum()


def _clean_and_adversarial_logits(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                                  sample_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of x and x_adv in one forward (DistributedDataParallel expects one per backward) and
    the per-sample weights normalised to sum 1."""
    logits = model(torch.cat([x, x_adv])).float()   # bf16 under autocast: losses in fp32
    n = len(x)
    return logits[:n], logits[n:], sample_weights / sample_weights.sum()


def adversarial_loss(model: nn.Module, attack: torchattacks.Attack, x: torch.Tensor, y: torch.Tensor,
                     sample_weights: torch.Tensor, adv_weight: float) -> torch.Tensor:
    """(1-adv_weight)*CE(clean) + adv_weight*CE(adversarial), weighted mean over the batch.

    The attack runs the model in eval mode (torchattacks' default), so batch-norm statistics
    are not polluted by adversarial inputs during the search.
    """
    clean, adv, w = _clean_and_adversarial_logits(model, x, attack(x, y).detach(), sample_weights)
    loss_clean = (w * F.cross_entropy(clean, y, reduction="none")).sum()
    loss_adv = (w * F.cross_entropy(adv, y, reduction="none")).sum()
    return (1.0 - adv_weight) * loss_clean + adv_weight * loss_adv


def anchored_loss(model: nn.Module, anchor: nn.Module, attack: torchattacks.Attack, x: torch.Tensor,
                  sample_weights: torch.Tensor, adv_weight: float) -> torch.Tensor:
    """(1-adv_weight)*KL(a(x) || f(x)) + adv_weight*KL(a(x) || f(x_adv)) with the frozen anchor ``a``,
    weighted mean over the batch."""
    with torch.no_grad():
        target = F.softmax(anchor(x).float(), dim=-1)
    clean, adv, w = _clean_and_adversarial_logits(model, x, attack(x).detach(), sample_weights)

    def kl(logits: torch.Tensor) -> torch.Tensor:
        return (w * F.kl_div(F.log_softmax(logits, dim=-1), target, reduction="none").sum(-1)).sum()

    return (1.0 - adv_weight) * kl(clean) + adv_weight * kl(adv)


#: APGD (or FGSM) this far below PGD at one eps is reported as gradient masking
MASKING_GAP = 0.03


def _eval_attacks(model: nn.Module, eps: int, pgd_steps: int, pgd_restarts: int, apgd_steps: int,
                  n_classes: int) -> dict[str, list[torchattacks.Attack]]:
    """attack name -> the attacks whose failures an image must all survive (restarts)."""
    e = eps / 255
    attacks = {"fgsm": [torchattacks.FGSM(model, eps=e)],
               "pgd": [pgd_attack(model, e, pgd_steps) for _ in range(max(1, pgd_restarts))]}
    if apgd_steps > 0:
        attacks["apgd_ce"] = [torchattacks.APGD(model, norm="Linf", eps=e, steps=apgd_steps, loss="ce", seed=0)]
        attacks["apgd_t_dlr"] = [torchattacks.APGDT(model, norm="Linf", eps=e, steps=apgd_steps, seed=0,
                                                    n_classes=n_classes)]
    return attacks


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps_list: tuple[int, ...] = ROBUST_EPS,
                    pgd_steps: int = 10, batch_size: int = 256, device: torch.device | str = "cpu",
                    pgd_restarts: int = 1, apgd_steps: int = 0, n_classes: int | None = None,
                    nested: bool = False) -> dict:
    """{"clean": acc, "fgsm": {"1/255": acc, ...}, "pgd": {...}, ["apgd_ce", "apgd_t_dlr",] "worst": {...},
    "masking": [eps...]} on float images in [0, 1].

    ``nested``: an attack only attacks the images it has not yet broken, i.e. that were classified
    correctly and survived it (every restart) at every smaller eps. An adversarial image found at
    eps lies inside every larger ball, so robust accuracy keeps its definition (the fraction of
    images for which no adversarial example was found), never rises with eps, can only be lower
    (a found example is not lost to an unlucky start at the next eps), and is far cheaper: strong attacks (APGD 100 steps,
    PGD-20 with restarts) run only on the few images still standing at large eps."""
    model.eval()
    n = len(labels)
    n_classes = n_classes or int(labels.max()) + 1
    eps_list = tuple(sorted(eps_list)) if nested else eps_list
    attacks = {e: _eval_attacks(model, e, pgd_steps, pgd_restarts, apgd_steps, n_classes) for e in eps_list}
    names = list(next(iter(attacks.values())))
    correct = {(name, e): 0 for e in eps_list for name in names + ["worst"]}
    clean = 0
    # one tick per (batch, eps, attack): a 1,000-image full-strength eval takes about an hour on 2 cores,
    # which a per-batch bar would show as 4 ticks
    bar = tqdm(total=-(-n // batch_size) * len(eps_list) * len(names), desc="robust eval", unit="attack",
               leave=False)
    for start in range(0, n, batch_size):
        x = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device)
        clean_ok = _survives(model, x, y)
        clean += int(clean_ok.sum())
        standing = {name: clean_ok.clone() for name in names} if nested else {}   # not yet broken by that attack
        for e, by_name in attacks.items():
            survives_all = torch.ones(len(y), dtype=torch.bool, device=y.device)
            for name, runs in by_name.items():
                bar.set_postfix_str(f"{name} {e}/255, images {start}-{start + len(y)}", refresh=False)
                if nested:
                    survives = standing[name].clone()
                    for attack in runs:
                        idx = survives.nonzero().squeeze(1)
                        if len(idx):
                            survives[idx] = _survives(model, attack(x[idx], y[idx]), y[idx])
                    standing[name] = survives
                else:
                    survives = torch.ones(len(y), dtype=torch.bool, device=y.device)
                    for attack in runs:
                        survives &= _survives(model, attack(x, y), y)
                correct[(name, e)] += int(survives.sum())
                survives_all &= survives
                bar.update()
            correct[("worst", e)] += int(survives_all.sum())
    bar.close()
    result: dict = {"clean": clean / n, "n_images": n, "pgd_steps": pgd_steps, "pgd_restarts": max(1, pgd_restarts),
                    "apgd_steps": apgd_steps, "nested": nested, **{name: {} for name in names + ["worst"]}}
    for (name, e), c in correct.items():
        result[name][f"{e}/255"] = c / n
    result["masking"] = masking_eps(result)
    return result


@torch.no_grad()
def _survives(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x_adv).argmax(-1) == y


def masking_eps(result: dict) -> list[str]:
    """The eps at which a stronger or a simpler attack beats PGD by more than MASKING_GAP."""
    found = []
    for eps, pgd in result["pgd"].items():
        others = [result[k][eps] for k in ("fgsm", "apgd_ce", "apgd_t_dlr") if k in result]
        if others and min(others) < pgd - MASKING_GAP:
            found.append(eps)
    return found
