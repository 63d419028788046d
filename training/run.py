"""One training run, stage by stage, in a run folder that survives interruptions.

Stages: (1) validate the manifest, (2) train the teachers, (3) measure their per-class
strength on val, (4) distill into the student per mode (``ce`` / ``kd`` / ``eadd``),
(5) adversarial fine-tuning, (6) evaluation, ONNX export and ``report.md``.

Run folder::

    config.json            the resolved configuration (profile + overrides)
    manifest_header.json   the header of the manifest trained on; manifest.jsonl, its full copy
    eval_manifest.jsonl    a copy of --eval-manifest, when given
    checkpoints/<stage>.pt model, optimizer, scheduler, next step, done flag, stage state
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
import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from training import adversarial, eadd, evaluate
from training.data import SplitData, augment, epoch_order, load_manifest_splits, load_split, steps_per_epoch
from training.errors import TrainingError
from training.manifest import Manifest
from training.models import create_model, list_models
from training.profiles import Profile

STUDENT = "hybrid_student"
#: Teachers whose training data is not FER2013's Training split only (see the report's warning).
LEAKY_TEACHERS = {"mini_xception": "fer's mini-Xception was trained on the first 80 % of fer2013.csv (the Training "
                                   "rows), but its checkpoint was chosen on the other rows (PublicTest + PrivateTest): "
                                   "its test numbers and its students' are slightly optimistic"}


class RunInterrupted(Exception):
    """The run stopped (``stop_after_steps`` reached or Ctrl-C) after writing a checkpoint."""


@dataclass
class RunConfig:
    out: str
    profile: Profile
    modes: tuple[str, ...] = ("eadd",)
    seed: int = 0
    device: str = "auto"
    teachers_explicit: bool = False
    stop_after_steps: int | None = None   # simulate an interruption (tests, time-boxed jobs)

    def to_dict(self) -> dict:
        return {"profile": self.profile.to_dict(), "modes": list(self.modes), "seed": self.seed,
                "teachers_explicit": self.teachers_explicit}


@dataclass
class Context:
    """What every stage needs: device, folder, seed, distributed rank, the step budget."""

    out: Path
    device: torch.device
    seed: int
    classes: list[str]
    policy: dict
    rank: int = 0
    world: int = 1
    stop_after_steps: int | None = None
    steps_done: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def say(self, message: str) -> None:
        if self.main:
            tqdm.write(f"training: {message}", file=sys.stderr)
            self.log.append(message)


# ---------------------------------------------------------------- setup


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise TrainingError(f"--device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def set_determinism(seed: int) -> None:
    """Seeds everything and asks torch for deterministic kernels where it has them."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world_size, device) — a process group when torchrun set WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2))
    return dist.get_rank(), world, device


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()


def step_seed(seed: int, stage: str, step: int) -> int:
    """The seed of one optimizer step: a pure function, so a resumed step replays exactly."""
    return (seed * 1_000_003 + zlib.crc32(stage.encode()) * 7_919 + step) % (2**63 - 1)


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float))
    tmp.replace(path)


def prepare_run_folder(out: Path, manifest: Manifest | None, cfg: RunConfig, resume: bool) -> tuple[Manifest, RunConfig]:
    """Creates (or, on resume, checks and reloads) the run folder; returns the manifest and config to use."""
    from training.manifest import read_manifest_file

    config_path = out / "config.json"
    if resume:
        if not config_path.is_file():
            raise TrainingError(f"--resume: {out} holds no run (no config.json); drop --resume to start one")
        saved = json.loads(config_path.read_text())
        header = json.loads((out / "manifest_header.json").read_text())
        if manifest is None:
            manifest = read_manifest_file(str(out / "manifest.jsonl"))
        elif manifest.header["content_hash"] != header["content_hash"]:
            raise TrainingError(f"--resume: the manifest given ({manifest.header['content_hash'][:19]}…) is not the one "
                                f"{out} was trained on ({header['content_hash'][:19]}…); pass the same manifest or none")
        prof = saved["profile"]
        prof["teachers"] = tuple(prof["teachers"])
        prof["robust_eps"] = tuple(prof["robust_eps"])
        cfg = RunConfig(out=cfg.out, profile=Profile(**prof), modes=tuple(saved["modes"]), seed=saved["seed"],
                        device=cfg.device, teachers_explicit=saved["teachers_explicit"],
                        stop_after_steps=cfg.stop_after_steps)
        return manifest, cfg
    if manifest is None:
        raise TrainingError("no manifest: pass --manifest FILE or pipe `fercurate export --view NAME | training`")
    if config_path.exists():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or --out elsewhere")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "predictions").mkdir(exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    write_json(config_path, cfg.to_dict())
    write_json(out / "manifest_header.json", manifest.header)
    (out / "manifest.jsonl").write_text(manifest.text, encoding="utf-8")
    return manifest, cfg


# ---------------------------------------------------------------- the training loop


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train_stage(ctx: Context, stage: str, model: nn.Module, train: SplitData, epochs: float, lr: float,
                weight_decay: float, batch_size: int, checkpoint_every: int,
                loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                on_epoch_start: Callable[[int], None] | None = None,
                state: Callable[[], dict] | None = None, load_state: Callable[[dict], None] | None = None) -> dict:
    """Trains ``model`` for ``epochs`` (fractional allowed) with AdamW + one-cycle, resumably.

    ``loss_fn(model, x_aug, y, w)`` gives the batch loss; ``on_epoch_start(epoch)`` runs before
    each epoch's first step; ``state``/``load_state`` carry a stage's own state (e.g. EADD
    strengths) through checkpoints. Returns {"steps", "losses" (mean per epoch), "resumed_at"}.
    """
    path = ctx.out / "checkpoints" / f"{stage}.pt"
    model.to(ctx.device)
    per_epoch = steps_per_epoch(len(train), batch_size, ctx.world)
    total = round(epochs * per_epoch)
    if total == 0:   # e.g. a pretrained teacher used as it is
        return {"losses": [], "steps": 0, "resumed_at": None}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    start, history, resumed_at = 0, {"losses": []}, None
    if path.is_file():
        ck = torch.load(path, map_location=ctx.device, weights_only=False)
        model.load_state_dict(ck["model"])
        if ck["done"]:
            return ck["history"]
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, history = ck["step"], ck["history"]
        if load_state and ck.get("state") is not None:
            load_state(ck["state"])
        resumed_at = start
        ctx.say(f"{stage}: resuming at step {start}/{total} (epoch {start // per_epoch})")
    history["resumed_at"] = resumed_at

    def save(step: int, done: bool) -> None:
        if ctx.main:
            tmp = path.with_suffix(".tmp")
            torch.save({"model": unwrap(model).state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "step": step, "total_steps": total, "done": done,
                        "history": {**history, "steps": step}, "state": state() if state else None}, tmp)
            tmp.replace(path)
        barrier(ctx)

    net = model
    if ctx.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    orders: dict[int, torch.Tensor] = {}
    running: list[float] = []
    bar = tqdm(total=total, initial=start, desc=stage, unit="step", disable=not ctx.main, leave=False)
    next_step = start      # the first step not yet applied, what an interruption saves
    try:
        for step in range(start, total):
            epoch, j = divmod(step, per_epoch)
            if j == 0 and on_epoch_start is not None:
                on_epoch_start(epoch)
            if epoch not in orders:
                orders = {epoch: epoch_order(train, ctx.policy, ctx.classes, ctx.seed, epoch)}
            order = orders[epoch]
            first = (j * ctx.world + ctx.rank) * batch_size
            idx = order[torch.arange(first, first + batch_size) % len(order)]
            seed = step_seed(ctx.seed, stage, step)
            torch.manual_seed(seed)
            x = augment(train.float_images(idx).to(ctx.device), torch.Generator().manual_seed(seed))
            net.train()
            loss = loss_fn(net, x, train.labels[idx].to(ctx.device), train.weights[idx].to(ctx.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            next_step = step + 1
            running.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{running[-1]:.3f}", epoch=epoch)
            ctx.steps_done += 1
            last_of_epoch = j == per_epoch - 1 or step == total - 1
            if last_of_epoch:
                history["losses"].append(float(np.mean(running)))
                running = []
            if step + 1 < total and (last_of_epoch or (step + 1) % checkpoint_every == 0):
                save(step + 1, False)
            if ctx.stop_after_steps is not None and ctx.steps_done >= ctx.stop_after_steps and step + 1 < total:
                save(step + 1, False)
                raise RunInterrupted(f"stopped after {ctx.steps_done} steps in stage {stage} at step {step + 1}/{total}")
    except KeyboardInterrupt:
        save(next_step, False)
        raise RunInterrupted(f"interrupted in stage {stage} at step {next_step}/{total}") from None
    finally:
        bar.close()
    history["steps"] = total
    save(total, True)
    return history


def weighted_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return eadd.distill_loss(model(x), y, w, None, eadd.DistillConfig())


# ---------------------------------------------------------------- stages


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
                           prof.weight_decay, prof.batch_size, prof.checkpoint_every, weighted_ce)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        entry = metrics["teachers"].setdefault(name, {})
        entry.update({"params": evaluate.count_parameters(model), "source": getattr(model, "fer_meta", {}).get("source"),
                      "pretrained": pretrained, "epochs": epochs,
                      "loss_per_epoch": hist["losses"], "leak_warning": LEAKY_TEACHERS.get(name)})


def teacher_probs(ctx: Context, teachers: dict[str, nn.Module], data: SplitData) -> torch.Tensor:
    """(T, N, C) probabilities of every teacher on a split."""
    return torch.stack([evaluate.predict_probs(m, data, device=ctx.device, desc=f"{n} on val")
                        for n, m in teachers.items()])


def make_distill_loss(ctx: Context, mode: str, prof: Profile, teachers: dict[str, nn.Module], val: SplitData,
                      val_strength: torch.Tensor | None, strength_log: list) -> tuple[Callable, Callable | None,
                                                                                   Callable | None, Callable | None]:
    """(loss_fn, on_epoch_start, state, load_state) for one ablation mode."""
    cfg = eadd.DistillConfig(prof.temperature, prof.alpha, prof.tau_w, prof.beta, prof.strength_momentum)
    if mode == "ce":
        return weighted_ce, None, None, None
    models = list(teachers.values())
    holder = {"strength": val_strength.clone() if mode == "eadd" else None}

    def loss_fn(net, x, y, w):
        with torch.no_grad():
            logits = torch.stack([t(x) for t in models])
            weights = eadd.teacher_weights(logits, y, holder["strength"], cfg)
            target = eadd.distill_target(logits, weights, cfg.temperature)
        return eadd.distill_loss(net(x), y, w, target, cfg)

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
                                                   device=ctx.device)
    return result


def robust_subset(test: SplitData, max_images: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images (a seeded random subset when the profile caps them) for robust evaluation."""
    idx = np.arange(len(test))
    if max_images is not None and max_images < len(test):
        idx = np.sort(np.random.default_rng(seed).choice(len(test), max_images, replace=False))
    sub = test.subset(idx)
    return sub.float_images(), sub.labels


def train_student(ctx: Context, mode: str, prof: Profile, splits: dict[str, SplitData], teachers: dict[str, nn.Module],
                  val_strength: torch.Tensor | None, metrics: dict, eval_test: SplitData | None) -> None:
    """Distill (mode), evaluate, adversarially fine-tune, evaluate again, export ONNX."""
    from training.onnx_export import export_onnx

    entry = metrics["students"].setdefault(mode, {})
    torch.manual_seed(step_seed(ctx.seed, f"init-{mode}", 0))
    student = create_model(STUDENT, len(ctx.classes))
    strength_log: list = []
    loss_fn, on_epoch, state, load_state = make_distill_loss(ctx, mode, prof, teachers, splits["val"], val_strength,
                                                             strength_log)
    hist = train_stage(ctx, f"student-{mode}", student, splits["train"], prof.student_epochs, prof.lr,
                       prof.weight_decay, prof.batch_size, prof.checkpoint_every, loss_fn, on_epoch, state, load_state)
    entry["distill_loss_per_epoch"] = hist["losses"]
    if mode == "eadd":
        ck = torch.load(ctx.out / "checkpoints" / f"student-{mode}.pt", weights_only=False)
        entry["strength_history"] = (ck.get("state") or {}).get("log", strength_log)
    robust_images = robust_subset(splits["test"], prof.robust_max_images, ctx.seed)
    if ctx.main and "distilled" not in entry:     # kept by a run interrupted after this evaluation
        entry["distilled"] = evaluate_student(ctx, student, splits, prof, f"student-{mode}", robust_images)
    barrier(ctx)

    attack = adversarial.make_attack(student, prof.adv_method, prof.adv_eps, prof.adv_steps)

    def adv_loss(net, x, y, w):
        if prof.adv_method == "trades":
            return adversarial.trades_loss(net, attack, x, y, w, prof.trades_beta)
        return adversarial.adversarial_loss(net, attack, x, y, w, prof.adv_weight)

    hist = train_stage(ctx, f"adversarial-{mode}", student, splits["train"], prof.adv_epochs, prof.adv_lr,
                       prof.weight_decay, prof.batch_size, prof.checkpoint_every, adv_loss)
    entry["adversarial_loss_per_epoch"] = hist["losses"]
    if not ctx.main:
        return
    entry["adversarial"] = evaluate_student(ctx, student, splits, prof, f"robust-{mode}", robust_images)
    entry["adversarial"]["settings"] = {"method": prof.adv_method, "eps": prof.adv_eps, "steps": prof.adv_steps,
                                        "epochs": prof.adv_epochs, "lr": prof.adv_lr,
                                        **({"beta": prof.trades_beta} if prof.adv_method == "trades"
                                           else {"adv_weight": prof.adv_weight})}
    if eval_test is not None:
        probs = evaluate.predict_probs(student, eval_test, device=ctx.device, desc="eval-manifest test")
        entry["eval_manifest_test"] = evaluate.split_metrics(probs, eval_test, ctx.classes)
        csv_path = ctx.out / "predictions" / f"robust-{mode}-eval-test.csv"
        evaluate.write_predictions_csv(str(csv_path), probs, eval_test, ctx.classes)
        entry["eval_manifest_test"]["predictions_csv"] = str(csv_path.relative_to(ctx.out))
    cpu_student = unwrap(student).cpu().eval()
    entry["params"] = evaluate.count_parameters(cpu_student)
    entry["speed"] = evaluate.cpu_speed(cpu_student, iters=prof.speed_iters)
    onnx = export_onnx(cpu_student, str(ctx.out / f"student-{mode}.onnx"), len(ctx.classes),
                       latency_iters=prof.speed_iters)
    entry["onnx"] = {**onnx, "path": str(Path(onnx["path"]).relative_to(ctx.out))}
    student.to(ctx.device)


def evaluate_teachers(ctx: Context, teachers: dict[str, nn.Module], splits: dict[str, SplitData],
                      val_probs: torch.Tensor, strength: torch.Tensor, metrics: dict) -> None:
    for i, (name, model) in enumerate(teachers.items()):
        entry = metrics["teachers"][name]
        entry["val"] = evaluate.split_metrics(val_probs[i], splits["val"], ctx.classes)
        test_probs = evaluate.predict_probs(model, splits["test"], device=ctx.device, desc=f"{name} test")
        entry["test"] = evaluate.split_metrics(test_probs, splits["test"], ctx.classes)
        entry["strength_val_f1"] = dict(zip(ctx.classes, strength[i].tolist()))


# ---------------------------------------------------------------- the pipeline


def run_pipeline(cfg: RunConfig, manifest: Manifest | None, eval_manifest: Manifest | None = None,
                 resume: bool = False) -> dict:
    """Runs (or resumes) every stage and returns metrics.json's content.

    Raises RunInterrupted after checkpointing when ``cfg.stop_after_steps`` is reached.
    """
    from training.report import write_report

    out = Path(cfg.out)
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
                  rank=rank, world=world, stop_after_steps=cfg.stop_after_steps)
    metrics_path = out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if resume and metrics_path.is_file() else {}
    metrics.update({"profile": prof.name, "modes": list(cfg.modes), "seed": cfg.seed, "device": str(device),
                    "world_size": world, "manifest": {k: manifest.header.get(k) for k in
                                                      ("dataset", "version", "content_hash", "num_samples",
                                                       "split_counts", "policy")}})
    metrics.setdefault("teachers", {})
    metrics.setdefault("students", {})
    metrics.setdefault("resumes", [])
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
            train_teachers(ctx, prof, splits, teachers, metrics)
            val_probs = teacher_probs(ctx, teachers, splits["val"])
            strength = eadd.teacher_strength(val_probs, splits["val"].labels, len(ctx.classes))
            if ctx.main:
                evaluate_teachers(ctx, teachers, splits, val_probs, strength, metrics)
        for mode in cfg.modes:
            if resume and "onnx" in metrics["students"].get(mode, {}):
                ctx.say(f"student {mode}: finished before the interruption (metrics kept)")
                continue
            train_student(ctx, mode, prof, splits, teachers, strength, metrics, eval_test)
            if ctx.main:
                write_json(metrics_path, metrics)
    except RunInterrupted:
        if ctx.main:
            write_json(metrics_path, metrics)
        raise
    if ctx.main:
        metrics["log"] = ctx.log
        write_json(metrics_path, metrics)
        write_report(out, metrics, manifest.classes)
    barrier(ctx)
    return metrics
