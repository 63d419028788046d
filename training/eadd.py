r"""Emotion-Aware Dynamic Distillation (EADD): weight each teacher by how good it is at *this* emotion.

Teachers differ per emotion (one separates fear from surprise, another finds disgust), so a
uniform average of their soft labels blurs the best advice. EADD, exactly:

**Strength.** For teacher t and class c, on held-out data (val, never train, which the teachers
have fitted)::

    s_{t,c} = F1_{t,c}

the per-class F1 of the teacher's argmax predictions (``sklearn.metrics.f1_score``,
``average=None``). F1 rather than recall, so a teacher that answers "happy" for everything is
not called strong on happy. **Re-estimated as training goes**: at the start of every student
epoch e the teachers are scored again on a freshly augmented view of val (the same
augmentation the student is trained with, seeded by e) and::

    s <- m * s + (1 - m) * s_new        (m = ``strength_momentum``; s_0 from clean val)

so the weights track how reliable each teacher is on the inputs the student actually sees.

**Teacher weights** for a sample x with (curated) label y::

    w_t(x) = softmax_t( s_{t,y} / tau_w  +  beta * log p_t(y | x) )

i.e. proportional to exp(s_{t,y}/tau_w) * p_t(y|x)^beta, where p_t(y|x) = softmax(z_t(x))_y is
the teacher's confidence in the true emotion on this very (augmented) input. tau_w (``tau_w``)
sets how sharply the strongest teacher wins; beta (``beta``) = 0 drops the per-sample term.

**Target and loss** with temperature T and mixing alpha::

    q(x) = sum_t w_t(x) * softmax(z_t(x) / T)
    L(x) = alpha * T^2 * KL( q(x) || softmax(z_s(x) / T) )  +  (1 - alpha) * CE(z_s(x), y)

averaged over the batch with the manifest's per-sample weights omega_i (policy
``class_weights``; 1 otherwise): L = sum_i omega_i L(x_i) / sum_i omega_i.

Ablations: ``kd`` is the same loss with w_t = 1/n_teachers (uniform multi-teacher KD); ``ce`` is
alpha = 0 (the student alone on hard labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

MODES: tuple[str, ...] = ("ce", "kd", "eadd")


@dataclass(frozen=True)
class DistillConfig:
    """The constants of the formula above."""

    temperature: float = 4.0
    alpha: float = 0.7
    tau_w: float = 0.1
    beta: float = 1.0
    strength_momentum: float = 0.5


def teacher_strength(teacher_probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """s[t, c] = per-class F1 of teacher t on held-out data; teacher_probs is (T, N, C)."""
    y = labels.cpu().numpy()
    preds = teacher_probs.argmax(-1).cpu().numpy()
    rows = [f1_score(y, p, labels=np.arange(num_classes), average=None, zero_division=0) for p in preds]
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def update_strength(strength: torch.Tensor, new: torch.Tensor, momentum: float) -> torch.Tensor:
    """The running estimate: s <- m*s + (1-m)*s_new."""
    return momentum * strength + (1.0 - momentum) * new


def teacher_weights(teacher_logits: torch.Tensor, labels: torch.Tensor, strength: torch.Tensor | None,
                    cfg: DistillConfig) -> torch.Tensor:
    """w[t, i]: EADD weights (strength given) or uniform 1/T (strength None); teacher_logits is (T, N, C)."""
    n_teachers, n = teacher_logits.shape[:2]
    if strength is None:
        return torch.full((n_teachers, n), 1.0 / n_teachers, device=teacher_logits.device)
    s_y = strength.to(teacher_logits.device)[:, labels]                       # (T, N)
    log_conf = F.log_softmax(teacher_logits, -1).gather(-1, labels.expand(n_teachers, n).unsqueeze(-1)).squeeze(-1)
    return torch.softmax(s_y / cfg.tau_w + cfg.beta * log_conf, dim=0)


def distill_target(teacher_logits: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """q(x) = sum_t w_t(x) softmax(z_t(x)/T), shape (N, C)."""
    return (weights.unsqueeze(-1) * torch.softmax(teacher_logits / temperature, -1)).sum(0)


def distill_loss(student_logits: torch.Tensor, labels: torch.Tensor, sample_weights: torch.Tensor,
                 target: torch.Tensor | None, cfg: DistillConfig, hard_target: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """alpha*T^2*KL(q||p_s^T) + (1-alpha)*CE, weighted mean over the batch; target None = plain CE.

    ``hard_target`` (N, C) replaces the one-hot label in the CE term (``--soft-labels``)."""
    student_logits = student_logits.float()   # bf16 under autocast: the loss itself is computed in fp32
    ce = F.cross_entropy(student_logits, labels if hard_target is None else hard_target, reduction="none")
    if target is None:
        per_sample = ce
    else:
        t = cfg.temperature
        log_p = F.log_softmax(student_logits / t, -1)
        kl = (target * (torch.log(target.clamp_min(1e-12)) - log_p)).sum(-1)
        per_sample = cfg.alpha * t * t * kl + (1.0 - cfg.alpha) * ce
    w = sample_weights.to(per_sample.dtype)
    return (w * per_sample).sum() / w.sum()
