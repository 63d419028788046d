"""A fixed bank of augmented views of the train split, and the teachers' logits on it.

Why: distillation ran every teacher forward on every student step (1.9 s per step, of which
the student's own work was a fifth), so the budget bought five student epochs. The teachers
are frozen while a student learns, so their answer on a given input never changes: draw each
training image's augmentation from a fixed bank of V views, run every teacher once per view,
and a distillation step costs a table lookup. With V views and E student epochs the teacher
forwards cost V/E of the uncached path; EADD's per-sample weights and its per-epoch strength
re-estimation (on val, see :mod:`training.eadd`) are unchanged, they only read the table.

View 0 is the image, view 1 its mirror, views 2.. are :func:`training.data.augment` draws
seeded by (seed, view). Views are stored as uint8 (what the student is fed is exactly what
the teachers saw). Each epoch a seeded draw picks one view per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from training.data import SplitData, augment
from training.runtime import step_seed

CHUNK = 1024


@dataclass
class ViewBank:
    """(V, N, 1, 48, 48) uint8 views of one split; ``seed`` fixes them and the per-epoch draw."""

    images: torch.Tensor
    seed: int

    @property
    def n_views(self) -> int:
        return self.images.shape[0]

    def epoch_views(self, epoch: int) -> torch.Tensor:
        """(N,) the view each image shows in ``epoch``: a seeded draw, the same on every rank and on resume."""
        g = torch.Generator().manual_seed(step_seed(self.seed, "views", epoch))
        return torch.randint(self.n_views, (self.images.shape[1],), generator=g)

    def batch(self, index: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] images of samples ``index`` in views ``views``."""
        return self.images[views, index].float().div_(255.0)


def build_bank(data: SplitData, n_views: int, seed: int) -> ViewBank:
    """The bank: identity, mirror, then ``n_views - 2`` seeded augmentations of every image."""
    if n_views < 1:
        raise ValueError("a view bank needs at least one view")
    views = torch.empty((n_views, *data.images.shape), dtype=torch.uint8)
    views[0] = data.images
    if n_views > 1:
        views[1] = data.images.flip(-1)
    for v in range(2, n_views):
        g = torch.Generator().manual_seed(step_seed(seed, "bank", v))
        for start in range(0, len(data), CHUNK):
            x = augment(data.float_images(slice(start, start + CHUNK)), g)
            views[v, start:start + CHUNK] = (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    return ViewBank(views, seed)


@torch.no_grad()
def teacher_logits(teachers: dict[str, torch.nn.Module], bank: ViewBank, device: torch.device,
                   batch_size: int = 512, bf16: bool = False) -> torch.Tensor:
    """(T, V, N, C) logits of every (eval-mode) teacher on every view of the bank; ``bf16`` as the
    training steps (the logits are targets of a bf16 step, so fp32 would buy nothing)."""
    n_views, n = bank.images.shape[:2]
    out = None
    bar = tqdm(total=len(teachers) * n_views * n, desc="teacher logits on the view bank", unit="img", leave=False)
    for t, model in enumerate(teachers.values()):
        model.eval()
        for v in range(n_views):
            for start in range(0, n, batch_size):
                x = bank.images[v, start:start + batch_size].to(device).float().div_(255.0)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    z = model(x.contiguous(memory_format=torch.channels_last)).float().cpu()
                if out is None:
                    out = torch.empty((len(teachers), n_views, n, z.shape[1]))
                out[t, v, start:start + len(x)] = z
                bar.update(len(x))
    bar.close()
    return out
