"""The process a run lives in: device, seeds, distributed rank, the run's shared context.

Everything here is independent of what is trained: :mod:`training.loop` and
:mod:`training.stages` build on it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from training.errors import TrainingError


class RunInterrupted(Exception):
    """The run stopped (``stop_after_steps`` reached or Ctrl-C) after writing a checkpoint."""


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
    #: training steps (and the teachers' logits on the view bank) under bfloat16 autocast
    bf16: bool = False
    steps_done: int = 0
    log: list[str] = field(default_factory=list)
    #: stage -> whether every rank ended it with the same weights (multi-process runs only)
    ddp_checks: dict = field(default_factory=dict)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> torch.autocast:
        """The arithmetic of a training step: bfloat16 autocast when ``bf16``, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def say(self, message: str) -> None:
        if self.main:
            tqdm.write(f"training: {message}", file=sys.stderr)
            self.log.append(message)


PRECISIONS = ("auto", "bf16", "fp32")


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (elsewhere autocast emulates it, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


def describe_machine(device: torch.device) -> dict:
    """What a wall time was measured on: the same run is ~2.5x slower on a CPU without native bf16."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "bf16_native": bf16_native(device), "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def resolve_precision(name: str, device: torch.device) -> bool:
    """True when training steps run under bfloat16 autocast."""
    if name not in PRECISIONS:
        raise TrainingError(f"precision {name!r}: use {', '.join(PRECISIONS)}")
    return name == "bf16" or (name == "auto" and bf16_native(device))


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


def ranks_agree(model: torch.nn.Module) -> dict:
    """Whether every rank holds bit-identical weights: each hashes its parameters and
    buffers, and the hashes are gathered. DDP averages gradients, so they must agree; a
    rank that diverged (a desync, a rank-dependent op) shows here, with the tensors that
    differ, instead of silently."""
    tensors = {name: hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
               for name, t in sorted(model.state_dict().items())}
    whole = hashlib.sha256("".join(f"{k}:{v}" for k, v in tensors.items()).encode()).hexdigest()[:16]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (whole, tensors))
    digests = [g[0] for g in gathered]
    differ = sorted(k for k in tensors if len({g[1].get(k) for g in gathered}) > 1)
    return {"agree": len(set(digests)) == 1, "digests": digests, "differ": differ[:20]}


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
