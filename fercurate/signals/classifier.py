"""A small image classifier trained from scratch, and out-of-fold probabilities from it.

cleanlab finds label issues from *out-of-sample* predicted probabilities, so this model is
trained once per cross-validation fold. There are no pretrained weights offline, so the
network starts from a random init: a compact VGG-style CNN (``arch="fer_cnn"``) that trains fast on 48-px
grayscale faces on a CPU, or any timm model name (``pretrained=False``).

Cross-validation over these models lives in :mod:`fercurate.signals.crossval`.

Everything works on plain arrays (``images``: uint8, N x H x W), so the benchmark calls
the same code as the signal without a database.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

FER_CNN = "fer_cnn"


@dataclass
class ClassifierParams:
    """How the cross-validated classifier is built and trained (all of it is fingerprinted).

    The defaults were chosen against crowd votes on FER2013's val split (see
    ``bench/curation_quality.py``), not against synthetic flips.
    """

    arch: str = FER_CNN          # "fer_cnn" or a timm model name (random init)
    width: int = 16              # fer_cnn channels in the first stage (doubles per stage)
    convs: int = 2               # fer_cnn 3x3 convs per stage (2: VGG-style, as the reference CNN)
    image_size: int = 48         # images are resized to image_size x image_size grayscale
    folds: int = 2               # K of the (group-)stratified K-fold cross-validation
    repeats: int = 2             # independent K-fold partitions; their held-out predictions are averaged
    epochs: int = 6
    min_steps: int = 150         # small datasets get more epochs: at least this many optimizer steps
    batch_size: int = 128
    lr: float = 3e-3             # peak AdamW learning rate of the one-cycle schedule
    weight_decay: float = 5e-4
    max_shift: int = 4           # augmentation: random shift of up to this many pixels ...
    hflip: bool = True           # ... and random horizontal flips (also used at test time)
    loss: str = "ce"             # "ce" or "gce" (generalized cross-entropy, robust to wrong labels)
    gce_q: float = 0.7           # GCE exponent: 0 -> cross-entropy, 1 -> mean absolute error
    label_smoothing: float = 0.1  # for "ce"
    mixup: float = 0.0           # mixup Beta(a, a) parameter (0 = off); blends images and their labels
    small_loss_drop: float = 0.0  # fraction of each batch's highest-loss samples left out of the step ...
    small_loss_after: float = 0.25  # ... from this fraction of training on (the net first learns clean patterns)
    bf16: str = "auto"           # bfloat16 autocast: "auto" (when the CPU has it), "on", "off"
    seed: int = 0


# --- images -----------------------------------------------------------------------------

def _read_gray(path: str, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def load_images(paths: Sequence[str], size: int, desc: str = "reading images") -> np.ndarray:
    """All images as one uint8 array (N, size, size); PIL decodes without the GIL."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(tqdm(pool.map(lambda p: _read_gray(p, size), paths, chunksize=256),
                           total=len(paths), desc=desc, unit=" img", leave=False))
    return np.stack(arrays) if arrays else np.zeros((0, size, size), np.uint8)


# --- model ------------------------------------------------------------------------------

def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class FerCNN(nn.Module):
    """Four conv stages (w, 2w, 4w, 8w channels; ``convs`` 3x3 convs each, BN + ReLU), each
    followed by a 2x2 max-pool, then global average pool, dropout, linear head; with
    ``convs=2, width=24`` it is the reference CNN of ``bench/curation_effect.py``. It follows
    timm's ``forward_features`` / ``forward_head(pre_logits=)`` API so :func:`penultimate`
    treats it like any timm model."""

    def __init__(self, num_classes: int, width: int = 32, in_chans: int = 1, drop: float = 0.3,
                 convs: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        for stage in range(4):
            c_out = width * 2 ** stage
            for _ in range(convs):
                layers.append(_conv_bn_relu(c_in, c_out))
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(c_in, num_classes)
        self.num_features = c_in

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(params: ClassifierParams, num_classes: int) -> nn.Module:
    """A randomly initialised 1-channel classifier for ``num_classes`` classes."""
    if params.arch == FER_CNN:
        return FerCNN(num_classes, params.width, convs=params.convs)
    import timm  # only when asked for: it is slow to import
    kwargs = {"img_size": params.image_size} if "vit" in params.arch or "levit" in params.arch else {}
    return timm.create_model(params.arch, pretrained=False, in_chans=1, num_classes=num_classes, **kwargs)


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled features the classifier head reads (timm's ``pre_logits``)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def use_bf16(params: ClassifierParams) -> bool:
    """bfloat16 autocast roughly doubles CPU training speed where the CPU computes it natively
    (AVX512-BF16 / AMX); elsewhere it is emulated and slower, so "auto" checks."""
    if params.bf16 in ("on", "off"):
        return params.bf16 == "on"
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


# --- training ---------------------------------------------------------------------------

def image_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's mean and std: inputs are standardised per image (FER2013's brightness and
    contrast vary a lot and say nothing about the emotion). Computed once, not per batch."""
    x = images.float().flatten(1)
    return x.mean(dim=1), x.std(dim=1).clamp_min(1.0)


def _to_input(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) -> standardised float (B, 1, H, W), channels-last (faster CPU convs)."""
    x = (batch.float() - mean[:, None, None]) / std[:, None, None]
    return x.unsqueeze(1).contiguous(memory_format=torch.channels_last)


def augment(batch: torch.Tensor, max_shift: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to ``max_shift`` px per image (edges
    replicated) of a uint8 batch (B, H, W): a row gather, then a column gather."""
    b, h, w = batch.shape
    dy = torch.randint(-max_shift, max_shift + 1, (b, 1), generator=gen)
    dx = torch.randint(-max_shift, max_shift + 1, (b, 1), generator=gen)
    rows = (torch.arange(h) + dy).clamp(0, h - 1)
    cols = (torch.arange(w) + dx).clamp(0, w - 1)
    if hflip:
        flip = torch.rand(b, 1, generator=gen) < 0.5
        cols = torch.where(flip, w - 1 - cols, cols)
    batch = torch.gather(batch, 1, rows[:, :, None].expand(b, h, w))
    return torch.gather(batch, 2, cols[:, None, :].expand(b, h, w))


def sample_losses(logits: torch.Tensor, labels: torch.Tensor, params: ClassifierParams,
                  targets: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample training loss. GCE (Zhang & Sabuncu, 2018), ``(1 - p_y^q) / q``, bounds the
    pull of a confidently wrong label, so the net learns less of the label noise. ``targets``
    (N, C) are soft targets for "ce" in place of the labels."""
    if targets is not None:
        if params.loss != "ce":
            raise ValueError("soft targets need loss 'ce'")
        return F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=params.label_smoothing)
    if params.loss == "gce":
        p = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1).clamp_min(1e-6)
        return (1 - p ** params.gce_q) / params.gce_q
    if params.loss != "ce":
        raise ValueError(f"unknown loss {params.loss!r}; choose ce or gce")
    return F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=params.label_smoothing)


def batch_loss(losses: torch.Tensor, params: ClassifierParams, progress: float) -> torch.Tensor:
    """The mean loss, leaving out the batch's ``small_loss_drop`` largest once ``progress``
    (fraction of training done) passes ``small_loss_after``: small-loss selection (as in
    co-teaching, Han et al. 2018) keeps the likely-wrong labels out of the gradient."""
    if params.small_loss_drop <= 0 or progress < params.small_loss_after or len(losses) < 4:
        return losses.mean()
    keep = max(1, int(round(len(losses) * (1 - params.small_loss_drop))))
    return torch.topk(losses, keep, largest=False).values.mean()


def train_model(images: np.ndarray, labels: np.ndarray, num_classes: int, params: ClassifierParams,
                seed: int, desc: str = "training", targets: np.ndarray | None = None) -> nn.Module:
    """Train a fresh model on ``images`` (uint8 N x H x W) with AdamW and a one-cycle schedule;
    seeded, so the same inputs give the same weights. ``targets`` (N, C), when given, are the
    soft targets of the loss in place of ``labels``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(params, num_classes).to(memory_format=torch.channels_last)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    t_all = None if targets is None else torch.from_numpy(np.asarray(targets, dtype=np.float32))
    mean, std = image_stats(x_all)
    steps_per_epoch = max(1, math.ceil(len(images) / params.batch_size))
    epochs = max(params.epochs, math.ceil(params.min_steps / steps_per_epoch))
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=params.lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    bf16 = use_bf16(params)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{epochs}", unit=" batch",
                   leave=False)
        for step in bar:
            idx = order[step * params.batch_size:(step + 1) * params.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = _to_input(augment(x_all[idx], params.max_shift, params.hflip, gen), mean[idx], std[idx])
            y = y_all[idx]
            t = None if t_all is None else t_all[idx]
            lam, partner = 1.0, None
            if params.mixup > 0:
                lam = float(torch.distributions.Beta(params.mixup, params.mixup).sample())
                partner = torch.randperm(len(idx), generator=gen)
                x = lam * x + (1 - lam) * x[partner]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            progress = (epoch * steps_per_epoch + step) / total
            losses = sample_losses(logits, y, params, t)
            if partner is not None:
                losses = lam * losses + (1 - lam) * sample_losses(logits, y[partner], params,
                                                                  None if t is None else t[partner])
            loss = batch_loss(losses, params, progress)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, params: ClassifierParams, features: bool = False,
            batch_size: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax probabilities (averaged with the mirrored image when ``hflip``) and, if asked,
    the penultimate features of the unmirrored image."""
    model.eval()
    bf16 = use_bf16(params)
    probs, feats = [], []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start:start + batch_size])
        x = _to_input(batch, *image_stats(batch))
        views = [x, x.flip(3)] if params.hflip else [x]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            p = sum(F.softmax(model(v).float(), dim=1) for v in views) / len(views)
            if features:
                feats.append(penultimate(model, x).float().numpy())
        probs.append(p.numpy())
    return np.concatenate(probs).astype(np.float32), (np.concatenate(feats) if features else None)
