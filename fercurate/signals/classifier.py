"""A small image classifier trained from scratch, and out-of-fold probabilities from it.

cleanlab finds label issues from *out-of-sample* predicted probabilities: each image is
scored by a model that never saw its label. :func:`cross_val_probs` trains one model per
stratified fold on the other folds' images and predicts the held-out fold, one fold at a
time through a :class:`~fercurate.signals.base.ChunkStore`, so a killed run keeps the
folds it finished. There are no pretrained weights offline, so the network starts from a
random init: a compact VGG-style CNN (``arch="fer_cnn"``) that trains fast on 48-px
grayscale faces on a CPU, or any timm model name (``pretrained=False``).

The fold-0 model also embeds *every* image (its penultimate layer): one model, so all
vectors live in one space; the embeddings signal can use them as its fallback.

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
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from fercurate.signals.base import ChunkStore

FER_CNN = "fer_cnn"


@dataclass
class ClassifierParams:
    """How the cross-validated classifier is built and trained (all of it is fingerprinted)."""

    arch: str = FER_CNN          # "fer_cnn" or a timm model name (random init)
    width: int = 16              # fer_cnn channels in the first stage (doubles per stage)
    image_size: int = 48         # images are resized to image_size x image_size grayscale
    folds: int = 3               # K of the stratified K-fold cross-validation
    epochs: int = 8
    min_steps: int = 150         # small datasets get more epochs: at least this many optimizer steps
    batch_size: int = 128
    lr: float = 3e-3             # peak AdamW learning rate of the one-cycle schedule
    weight_decay: float = 5e-4
    max_shift: int = 4           # augmentation: random shift of up to this many pixels ...
    hflip: bool = True           # ... and random horizontal flips (also used at test time)
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
    """Four conv stages (w, 2w, 4w, 8w channels) with max-pooling, global average pool, dropout,
    linear head. It follows timm's ``forward_features`` / ``forward_head(pre_logits=)`` API
    so :func:`penultimate` treats it like any timm model."""

    def __init__(self, num_classes: int, width: int = 32, in_chans: int = 1, drop: float = 0.3):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn_relu(in_chans, w), nn.MaxPool2d(2),
            _conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),
            _conv_bn_relu(2 * w, 4 * w), _conv_bn_relu(4 * w, 4 * w), nn.MaxPool2d(2),
            _conv_bn_relu(4 * w, 8 * w),
        )
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(8 * w, num_classes)
        self.num_features = 8 * w

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
        return FerCNN(num_classes, params.width)
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


def train_model(images: np.ndarray, labels: np.ndarray, num_classes: int, params: ClassifierParams,
                seed: int, desc: str = "training") -> nn.Module:
    """Train a fresh model on ``images`` (uint8 N x H x W) with AdamW and a one-cycle schedule;
    seeded, so the same inputs give the same weights."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(params, num_classes).to(memory_format=torch.channels_last)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    mean, std = image_stats(x_all)
    steps_per_epoch = max(1, math.ceil(len(images) / params.batch_size))
    epochs = max(params.epochs, math.ceil(params.min_steps / steps_per_epoch))
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
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y_all[idx])
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


# --- cross-validation ---------------------------------------------------------------------

@dataclass
class CrossValResult:
    pred_probs: np.ndarray   # (N, C) out-of-fold probabilities, rows sum to 1
    fold: np.ndarray         # (N,) the fold each sample was held out in
    features: np.ndarray     # (N, D) penultimate features of the fold-0 model, every sample


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each sample's held-out fold: stratified by label, fixed by the seed."""
    fold = np.empty(len(labels), dtype=np.int64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        fold[test] = k
    return fold


def run_fold(images: np.ndarray, labels: np.ndarray, fold: np.ndarray, k: int, num_classes: int,
             params: ClassifierParams) -> dict[str, np.ndarray]:
    """Train on every fold but ``k``, predict fold ``k``; fold 0 also embeds every image."""
    train, held = fold != k, fold == k
    model = train_model(images[train], labels[train], num_classes, params, seed=params.seed + k,
                        desc=f"fold {k + 1}/{int(fold.max()) + 1}")
    if k != 0:
        return {"probs": predict(model, images[held], params)[0]}
    probs, feats = predict(model, images, params, features=True)
    return {"probs": probs[held], "features": feats}


def cross_val_probs(images: np.ndarray, labels: np.ndarray, num_classes: int, params: ClassifierParams,
                    folds: int | None = None, store: ChunkStore | None = None) -> CrossValResult:
    """Out-of-fold probabilities for every image, one fold per ``store`` chunk (resumable).

    ``folds`` overrides ``params.folds`` (the caller lowers it for tiny classes).
    """
    folds = folds or params.folds
    fold = fold_assignment(labels, folds, params.seed)
    pred_probs = np.zeros((len(labels), num_classes), dtype=np.float32)
    features = None
    for k in tqdm(range(folds), desc="cross-validation", unit=" fold"):
        def work(k: int = k) -> dict[str, np.ndarray]:
            return run_fold(images, labels, fold, k, num_classes, params)
        out = store.get(f"fold{k}", work) if store is not None else work()
        pred_probs[fold == k] = out["probs"]
        if k == 0:
            features = out["features"]
    return CrossValResult(pred_probs, fold, features)
