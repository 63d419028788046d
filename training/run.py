"""One training run, stage by stage, in a run folder that survives interruptions.

Stages: (1) validate the manifest, (2) train the teachers, (3) measure their per-class
strength on val, (4) with ``distill_views`` > 0, the view bank and the teachers' logits on it
(:mod:`training.view_bank`), (5) distill into the student per mode (``ce`` / ``kd`` / ``eadd``),
(6) adversarial fine-tuning, (7) evaluation, ONNX export and ``report.md``.

Run folder::

    config.json            the resolved configuration (profile + overrides)
    manifest_header.json   the header of the manifest trained on; manifest.jsonl, its full copy
    eval_manifest.jsonl    a copy of --eval-manifest, when given
    checkpoints/<stage>.pt model, optimizer, scheduler, next step, done flag, stage state
    checkpoints/teacher-logits.pt  the teachers' logits on the view bank (kept for --resume)
    metrics.json           every number of the report; predictions/*.csv; plots/*.png
    student-<mode>.onnx    the final student per mode;  report.md

**Resume.** A stage checkpoints every ``checkpoint_every`` optimizer steps, at each epoch
end, and on Ctrl-C or SIGTERM (the CLI turns SIGTERM into Ctrl-C). ``--resume`` reloads the saved config (and, when no manifest is given,
the saved manifest copy; a given one must have the same content_hash), skips finished stages
and continues an unfinished one at the step it stopped at. Batch order, augmentation, dropout
and attack noise are seeded from (seed, stage, step), so a resumed run reproduces the weights
of an uninterrupted one on the same device (bit-exact on CPU; on GPU up to the nondeterminism
``torch.use_deterministic_algorithms(warn_only=True)`` cannot remove).

**Multi-GPU / multi-node.** Launched by ``torchrun`` (``WORLD_SIZE`` > 1), each process takes
``cuda:LOCAL_RANK`` (or CPU with the gloo backend), models train under
DistributedDataParallel, each rank takes its share of every batch order (the global batch is
``batch_size * WORLD_SIZE``), and rank 0 alone evaluates and writes the run folder::

    torchrun --nproc_per_node 4 -m training.cli --manifest m.jsonl --profile paper --out runs/x
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m training.cli ...
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import torch.distributed as dist
import torch.nn as nn

from training import eadd
from training.data import load_manifest_splits, load_split
from training.errors import TrainingError
from training.manifest import Manifest
from training.run_folder import RunConfig, adopt_teachers, prepare_run_folder, read_run_json
from training.runtime import (Context, RunInterrupted, barrier, describe_machine, init_distributed,
                              resolve_device, resolve_precision, set_determinism, write_json)
from training.stages import (build_teachers, evaluate_teachers, student_inputs, teacher_probs, train_student,
                             train_teachers)

__all__ = ["RunConfig", "RunInterrupted", "run_pipeline"]


def run_pipeline(cfg: RunConfig, manifest: Manifest | None, eval_manifest: Manifest | None = None,
                 resume: bool = False) -> dict:
    """Runs (or resumes) every stage and returns metrics.json's content.

    Raises RunInterrupted after checkpointing when ``cfg.stop_after_steps`` is reached.
    """
    from training.report import write_report

    started = time.perf_counter()
    out = Path(cfg.out)
    if manifest is not None and cfg.profile.soft_label_weight > 0 and \
            not any(s.soft_label is not None for s in manifest.split("train")):
        raise TrainingError(f"{manifest.source}: --soft-labels, but no train sample carries a 'soft_label'; freeze "
                            "the version again after `fercurate compute DATASET label_issues`, or drop --soft-labels")
    device = resolve_device(cfg.device)
    rank, world, device = init_distributed(device)
    if rank == 0:
        manifest, cfg = prepare_run_folder(out, manifest, cfg, resume)
    barrier_ctx = Context(out=out, device=device, seed=cfg.seed, classes=[], policy={}, rank=rank, world=world)
    barrier(barrier_ctx)
    if rank != 0:
        manifest, cfg = prepare_run_folder(out, manifest, cfg, resume=True)
    eval_copy = out / "eval_manifest.jsonl"
    if eval_manifest is None and resume and eval_copy.is_file():
        from training.manifest import read_manifest_file
        eval_manifest = read_manifest_file(str(eval_copy))
    elif eval_manifest is not None and rank == 0:
        eval_copy.write_text(eval_manifest.text, encoding="utf-8")
    if eval_manifest is not None and eval_manifest.classes != manifest.classes:
        raise TrainingError(f"{eval_manifest.source}: --eval-manifest has classes {eval_manifest.classes}, "
                            f"the training manifest {manifest.classes}; they must match")
    prof = cfg.profile
    set_determinism(cfg.seed)
    ctx = Context(out=out, device=device, seed=cfg.seed, classes=manifest.classes, policy=manifest.policy,
                  rank=rank, world=world, stop_after_steps=cfg.stop_after_steps,
                  bf16=resolve_precision(prof.precision, device))
    metrics_path = out / "metrics.json"
    metrics = read_run_json(metrics_path, "--resume") if resume and metrics_path.is_file() else {}
    metrics.update({"profile": prof.name, "modes": list(cfg.modes), "seed": cfg.seed, "device": str(device),
                    "precision": "bf16" if ctx.bf16 else "fp32",
                    "soft_label_weight": prof.soft_label_weight,
                    "world_size": world, "manifest": {k: manifest.header.get(k) for k in
                                                      ("dataset", "version", "content_hash", "num_samples",
                                                       "split_counts", "policy")}})
    metrics.setdefault("teachers", {})
    metrics.setdefault("students", {})
    metrics.setdefault("resumes", [])
    machine = describe_machine(device)
    metrics["machines"] = [m for m in metrics.get("machines", []) if m != machine] + [machine]   # one per resume host
    metrics["wall_s_before"] = metrics.get("wall_s", 0.0) if resume else 0.0
    if resume:
        metrics["resumes"].append(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    splits, carved = load_manifest_splits(manifest, prof.val_fraction, cfg.seed)
    metrics["val_from_train"] = {"carved": carved, "fraction": prof.val_fraction if carved else None}
    metrics["split_sizes"] = {k: len(v) for k, v in splits.items()}
    if carved:
        ctx.say(f"the manifest has no val split: using a seeded stratified {prof.val_fraction:.0%} of train as val")
    eval_test = None
    if eval_manifest is not None:
        eval_test = load_split(eval_manifest.split("test"), manifest.classes, "eval-manifest test")
        metrics["eval_manifest"] = {k: eval_manifest.header.get(k) for k in ("dataset", "version", "content_hash")}
        metrics["eval_manifest"]["source"] = eval_manifest.source

    try:
        teachers: dict[str, nn.Module] = {}
        strength = None
        if any(m != "ce" for m in cfg.modes):
            teachers = build_teachers(ctx, prof.teachers, cfg.teachers_explicit)
            if not teachers:
                raise TrainingError(f"no usable teacher among {', '.join(prof.teachers)}; modes kd/eadd need one "
                                    "(or use --mode ce)")
            if cfg.teachers_from and ctx.main:
                metrics["teachers_from"] = adopt_teachers(Path(cfg.teachers_from), out, manifest, list(teachers),
                                                          cfg.seed, carved)
                ctx.say(f"teachers: reusing those of {cfg.teachers_from} (seed {metrics['teachers_from']['seed']})")
            barrier(ctx)
            train_teachers(ctx, prof, splits, teachers, metrics)
            val_probs = teacher_probs(ctx, teachers, splits["val"])
            strength = eadd.teacher_strength(val_probs, splits["val"].labels, len(ctx.classes))
            if ctx.main:
                evaluate_teachers(ctx, teachers, splits, val_probs, strength, metrics)
        todo = [m for m in cfg.modes if not (resume and "onnx" in metrics["students"].get(m, {}))]
        for mode in sorted(set(cfg.modes) - set(todo)):
            ctx.say(f"student {mode}: finished before the interruption (metrics kept)")
        t0 = time.perf_counter()
        bank, cached = student_inputs(ctx, prof, splits["train"], teachers) if todo else (None, None)
        if bank is not None:
            metrics["view_bank"] = {"views": bank.n_views, "seconds": round(time.perf_counter() - t0, 1)}
        for mode in todo:
            train_student(ctx, mode, prof, splits, teachers, strength, metrics, eval_test, bank, cached)
            if ctx.main:
                write_json(metrics_path, metrics)
    except RunInterrupted:
        if ctx.main:
            metrics["wall_s"] = round(metrics["wall_s_before"] + time.perf_counter() - started, 1)
            write_json(metrics_path, metrics)
        raise
    if world > 1:
        metrics["ddp"] = {"world_size": world, "backend": str(dist.get_backend()), "stages": ctx.ddp_checks}
    if ctx.main:
        metrics["log"] = ctx.log
        # wall seconds of the processes that made the run (summed over resumes)
        metrics["wall_s"] = round(metrics["wall_s_before"] + time.perf_counter() - started, 1)
        write_json(metrics_path, metrics)
        write_report(out, metrics, manifest.classes)
    barrier(ctx)
    return metrics
