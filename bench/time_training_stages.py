"""Time a few optimizer steps of every training stage and extrapolate a profile's wall time.

Times real steps (same models, batch size, augmentation and losses as ``training.run``) on
random 48-px batches, then scales by the profile's epochs and the manifest's split sizes:

    python bench/time_training_stages.py --profile cpu --train 25837 --val 2872 --test 7178 --threads 2

Times are CPU seconds of this process (``time.process_time``), which a busy shared machine
distorts far less than wall time; with ``--threads 1`` they approximate the wall time on one
dedicated core, and a dedicated 2-core machine at 2 threads takes roughly that / 1.6.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from training import adversarial, eadd
from training.data import augment, steps_per_epoch
from training.models import create_model
from training.profiles import get_profile


def _time_steps(step, n: int) -> float:
    """CPU seconds per call of this process (less distorted than wall time by other load)."""
    step()                                    # warm-up
    t0 = time.process_time()
    for _ in range(n):
        step()
    return (time.process_time() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--train", type=int, default=25837)
    p.add_argument("--val", type=int, default=2872)
    p.add_argument("--test", type=int, default=7178)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prof = get_profile(args.profile)
    bs = prof.batch_size
    x = torch.rand(bs, 1, 48, 48)
    y = torch.randint(0, 7, (bs,))
    w = torch.ones(bs)
    g = torch.Generator().manual_seed(0)
    per_epoch = steps_per_epoch(args.train, bs)
    timings: dict[str, float] = {}
    teachers = {name: create_model(name, 7) for name in prof.teachers}

    def train_step(model, loss_fn):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step():
            model.train()
            loss = loss_fn(model, augment(x, g))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    ce = eadd.DistillConfig()
    for name, model in teachers.items():
        timings[f"teacher {name} step"] = _time_steps(train_step(model, lambda m, xa: eadd.distill_loss(m(xa), y, w, None, ce)),
                                                      args.steps)
    for t in teachers.values():
        t.eval()
    strength = torch.rand(len(teachers), 7)

    def eadd_loss(m, xa):
        with torch.no_grad():
            logits = torch.stack([t(xa) for t in teachers.values()])
            target = eadd.distill_target(logits, eadd.teacher_weights(logits, y, strength, ce), ce.temperature)
        return eadd.distill_loss(m(xa), y, w, target, ce)

    table = torch.randn(len(teachers), bs, 7)   # the view bank's cached teacher logits for one batch

    def cached_eadd_loss(m, xa):
        logits = table
        target = eadd.distill_target(logits, eadd.teacher_weights(logits, y, strength, ce), ce.temperature)
        return eadd.distill_loss(m(xa), y, w, target, ce)

    student = create_model("student", 7)
    timings["student eadd step"] = _time_steps(train_step(student, eadd_loss), args.steps)
    timings["student eadd step, cached teacher logits"] = _time_steps(train_step(student, cached_eadd_loss), args.steps)
    timings["student ce step"] = _time_steps(train_step(student, lambda m, xa: eadd.distill_loss(m(xa), y, w, None, ce)),
                                             args.steps)
    attack = adversarial.pgd_attack(student, prof.adv_eps, prof.adv_steps)
    timings["adversarial step"] = _time_steps(
        train_step(student, lambda m, xa: adversarial.adversarial_loss(m, attack, xa, y, w, prof.adv_weight)), args.steps)
    with torch.no_grad():
        student.eval()
        timings["student predict batch"] = _time_steps(lambda: student(x), args.steps)
        for name, t in teachers.items():
            timings[f"teacher {name} predict batch"] = _time_steps(lambda: t(x), args.steps)
    n_robust = 32
    t0 = time.process_time()
    adversarial.robust_accuracy(student, x[:n_robust], y[:n_robust], prof.robust_eps, prof.robust_pgd_steps, n_robust,
                                pgd_restarts=prof.robust_pgd_restarts, apgd_steps=prof.robust_apgd_steps, n_classes=7)
    timings["robust eval per image"] = (time.process_time() - t0) / n_robust

    est: dict[str, float] = {}
    est["teachers"] = sum(timings[f"teacher {n} step"] for n in teachers) * prof.teacher_epochs * per_epoch
    predict_all = sum(timings[f"teacher {n} predict batch"] for n in teachers) / bs
    est["teacher val/test predictions"] = predict_all * (args.val + args.test)
    est["eadd strength re-estimates"] = predict_all * args.val * max(0, prof.student_epochs - 1)
    cached = prof.distill_views > 0
    est["view bank teacher logits"] = predict_all * args.train * prof.distill_views
    est["student eadd"] = timings["student eadd step, cached teacher logits" if cached else "student eadd step"] \
        * prof.student_epochs * per_epoch
    est["student ce"] = timings["student ce step"] * prof.student_epochs * per_epoch
    est["adversarial"] = timings["adversarial step"] * prof.adv_epochs * per_epoch
    n_rob = min(args.test, prof.robust_max_images or args.test)
    est["evaluation (2 evals)"] = 2 * (timings["student predict batch"] / bs * (args.val + args.test)
                                       + timings["robust eval per image"] * n_rob)
    one_mode = (est["teachers"] + est["teacher val/test predictions"] + est["eadd strength re-estimates"]
                + est["view bank teacher logits"]
                + est["student eadd"] + est["adversarial"] + est["evaluation (2 evals)"])
    ablations = one_mode + est["student ce"] + est["student eadd"] + 2 * (est["adversarial"] + est["evaluation (2 evals)"])
    print(json.dumps({"threads": args.threads, "unit": "CPU seconds", "steps_per_epoch": per_epoch, "seconds": timings,
                      "estimate_s": est, "total_one_mode_min": one_mode / 60, "total_ablations_min": ablations / 60},
                     indent=2))


if __name__ == "__main__":
    main()
