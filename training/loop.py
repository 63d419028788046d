"""The training loop every stage shares: AdamW + one-cycle, seeded per step, resumable mid-epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from training import eadd
from training.data import SplitData, augment, epoch_order, steps_per_epoch
from training.runtime import Context, RunInterrupted, barrier, ranks_agree, step_seed

if TYPE_CHECKING:
    from training.view_bank import ViewBank


@dataclass
class Batch:
    """One optimizer step's input: augmented images ``x``, curated labels ``y``, loss weights ``w``,
    soft targets (``--soft-labels``) or None, the samples' indices in the split, and the view of
    the :class:`~training.view_bank.ViewBank` each image came from (None: augmented afresh)."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    soft: torch.Tensor | None
    index: torch.Tensor
    views: torch.Tensor | None = None


#: a stage's batch loss
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train_stage(ctx: Context, stage: str, model: nn.Module, train: SplitData, epochs: float, lr: float,
                weight_decay: float, batch_size: int, checkpoint_every: int, loss_fn: LossFn,
                on_epoch_start: Callable[[int], None] | None = None,
                state: Callable[[], dict] | None = None, load_state: Callable[[dict], None] | None = None,
                soft_weight: float = 0.0, bank: "ViewBank | None" = None) -> dict:
    """Trains ``model`` for ``epochs`` (fractional allowed) with AdamW + one-cycle, resumably.

    ``loss_fn(model, batch)`` gives the batch loss (:class:`Batch`; its soft targets come from
    :meth:`SplitData.targets` when ``soft_weight`` > 0). Images are augmented afresh each step, or,
    with ``bank``, are the bank's view drawn for the epoch. ``on_epoch_start(epoch)`` runs before
    each epoch's first step; ``state``/``load_state`` carry a stage's own state (e.g. EADD
    strengths) through checkpoints. Returns {"steps", "losses" (mean per epoch), "resumed_at"}.
    """
    path = ctx.out / "checkpoints" / f"{stage}.pt"
    model.to(ctx.device, memory_format=torch.channels_last)   # oneDNN's fast layout for CPU convs
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
    clock = [time.perf_counter()]   # wall seconds of training, summed over resumes, in history["seconds"]

    def save(step: int, done: bool) -> None:
        now = time.perf_counter()
        history["seconds"] = round(history.get("seconds", 0.0) + now - clock[0], 1)
        clock[0] = now
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
                epoch_views = bank.epoch_views(epoch) if bank is not None else None
            order = orders[epoch]
            first = (j * ctx.world + ctx.rank) * batch_size
            idx = order[torch.arange(first, first + batch_size) % len(order)]
            seed = step_seed(ctx.seed, stage, step)
            torch.manual_seed(seed)
            if bank is None:
                views = None
                x = augment(train.float_images(idx).to(ctx.device), torch.Generator().manual_seed(seed))
            else:
                views = epoch_views[idx]
                x = bank.batch(idx, views).to(ctx.device)
            net.train()
            x = x.contiguous(memory_format=torch.channels_last)
            t = train.targets(idx, soft_weight).to(ctx.device) if soft_weight > 0 else None
            with ctx.autocast():
                loss = loss_fn(net, Batch(x, train.labels[idx].to(ctx.device), train.weights[idx].to(ctx.device), t,
                                          idx, views))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            next_step = step + 1
            running.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{running[-1]:.3f}", epoch=epoch, refresh=False)
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
    if ctx.world > 1:
        # DDP hands rank 0's buffers (BatchNorm running statistics) to every rank at the start
        # of each forward, so after the last step each rank holds the statistics of its own
        # last batch: end the stage as DDP would begin the next step, then check
        for buffer in unwrap(model).buffers():
            torch.distributed.broadcast(buffer, 0)
        ctx.ddp_checks[stage] = ranks_agree(unwrap(model))
    return history


def weighted_ce(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy, weighted per sample; against the batch's soft targets when it has them."""
    return eadd.distill_loss(model(batch.x), batch.y, batch.w, None, eadd.DistillConfig(), hard_target=batch.soft)
