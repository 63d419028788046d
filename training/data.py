"""Images in memory, batch augmentation for 48-px faces, and the manifest's rebalancing policy.

FER-sized datasets fit in memory as uint8 (35,887 faces are 83 MB), so every split is
decoded once into a tensor and batches are cut from it: no DataLoader workers to fight
over two cores, and batch order is a pure function of (seed, epoch), which makes resuming
in the middle of an epoch exact.

Rebalancing policy (the manifest header's ``policy``):

* ``class_weights``: each sample's manifest ``weight`` multiplies its loss term (a weighted
  mean over the batch). Loss weights keep every image once per epoch.
* ``oversample``: the epoch's index list repeats each image of class c
  ``oversample_repeat[c]`` times (the fractional part drawn at random per epoch).
* ``none``: plain shuffling, unit weights.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from training.errors import TrainingError
from training.manifest import Manifest, Sample

IMAGE_SIZE = 48


@dataclass
class SplitData:
    """One split in memory: images uint8 (N, 1, 48, 48), curated and raw label indices, loss weights,
    and the manifest's soft labels (N, C) when it has them."""

    images: torch.Tensor
    labels: torch.Tensor
    raw_labels: torch.Tensor
    weights: torch.Tensor
    paths: list[str]
    soft: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray | list[int]) -> "SplitData":
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return SplitData(self.images[idx], self.labels[idx], self.raw_labels[idx], self.weights[idx],
                         [self.paths[i] for i in idx.tolist()], None if self.soft is None else self.soft[idx])

    def targets(self, index: torch.Tensor, soft_weight: float) -> torch.Tensor:
        """The training target of a batch: ``(1 - w) * onehot(label) + w * soft_label``.

        The hard (curated) label keeps its say: a soft label describes the image and its
        *given* label, and a curator's relabel must win over it."""
        if self.soft is None:
            raise TrainingError("soft labels asked for, but the manifest has none")
        hard = F.one_hot(self.labels[index], self.soft.shape[1]).float()
        return (1.0 - soft_weight) * hard + soft_weight * self.soft[index]

    def float_images(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Images as float in [0, 1], the input range of every model and of torchattacks."""
        x = self.images if index is None else self.images[index]
        return x.float().div_(255.0)


def load_image(path: str, sha256: str | None = None) -> np.ndarray:
    """One face as a 48x48 uint8 grayscale array (other sizes are resized). With ``sha256``
    (what the version pinned), bytes that differ stop the run: a frozen version trains on
    the images it was frozen with, or not at all."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TrainingError(f"{path}: cannot read the image ({e.strerror}); restore it or re-export the version") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise TrainingError(f"{path}: the image changed since the version was frozen (sha256 differs); restore "
                            "the file, or freeze and export a new version")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("L")
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise TrainingError(f"{path}: cannot decode the image ({e}); fix or drop it from the version") from None


def load_split(samples: list[Sample], classes: list[str], desc: str = "images") -> SplitData:
    """Decode every image of a split once."""
    index = {c: i for i, c in enumerate(classes)}
    images = np.zeros((len(samples), 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, s in enumerate(tqdm(samples, desc=f"load {desc}", unit="img", leave=False)):
        images[i, 0] = load_image(s.filepath, s.sha256)
    labels = torch.tensor([index[s.label] for s in samples], dtype=torch.long)
    soft = None
    if any(s.soft_label is not None for s in samples):   # a sample without one keeps its hard label
        hard = np.eye(len(classes), dtype=np.float32)[labels.numpy()]
        soft = torch.from_numpy(np.array([s.soft_label if s.soft_label is not None else h
                                          for s, h in zip(samples, hard)], dtype=np.float32))
    return SplitData(
        images=torch.from_numpy(images),
        labels=labels,
        raw_labels=torch.tensor([index[s.original_label] for s in samples], dtype=torch.long),
        weights=torch.tensor([s.weight for s in samples], dtype=torch.float32),
        paths=[s.filepath for s in samples],
        soft=soft,
    )


def stratified_val_slice(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_index, val_index): a seeded, per-class slice of train used when the manifest has no val."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    n_val = math.ceil(fraction * len(labels))
    # stratified when every class can give one image to each side (sklearn refuses otherwise)
    stratify = labels if counts[counts > 0].min() >= 2 and min(n_val, len(labels) - n_val) >= (counts > 0).sum() \
        else None
    train_idx, val_idx = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)


def load_manifest_splits(manifest: Manifest, val_fraction: float, seed: int) -> tuple[dict[str, SplitData], bool]:
    """train/val/test in memory; the bool says whether val was carved out of train."""
    classes = manifest.classes
    splits = {name: load_split(manifest.split(name), classes, name) for name in ("train", "val", "test")}
    carved = len(splits["val"]) == 0
    if carved:
        train_idx, val_idx = stratified_val_slice(splits["train"].labels.numpy(), val_fraction, seed)
        splits["val"] = splits["train"].subset(val_idx)
        splits["train"] = splits["train"].subset(train_idx)
    return splits, carved


def epoch_order(data: SplitData, policy: dict, classes: list[str], seed: int, epoch: int) -> torch.Tensor:
    """The epoch's sample order: shuffled, with oversampling applied when the policy asks."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    index = torch.arange(len(data))
    if policy.get("name") == "oversample":
        repeat = torch.tensor([float(policy.get("oversample_repeat", {}).get(c, 1.0)) for c in classes])
        r = repeat[data.labels]
        whole = r.floor().long()
        extra = (torch.rand(len(data), generator=g) < (r - whole)).long()
        index = torch.repeat_interleave(index, whole + extra)
    return index[torch.randperm(len(index), generator=g)]


def steps_per_epoch(n_items: int, batch_size: int, world_size: int = 1) -> int:
    return max(1, math.ceil(n_items / (batch_size * world_size)))


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4, max_degrees: float = 10.0,
            scale: float = 0.1) -> torch.Tensor:
    """Random crop with padding, horizontal flip and a small rotation/scale, on a float batch.

    Faces are already centred, so the transformations stay small: a few pixels of shift,
    +-10 degrees, +-10 % scale. Done batch-wise with ``affine_grid`` (one matmul-sized op
    instead of per-image PIL calls) and seeded by ``generator`` for exact resume.
    """
    n, _, h, w = x.shape
    dev = x.device
    rnd = torch.rand(n, 5, generator=generator).to(dev)
    angle = (rnd[:, 0] * 2 - 1) * math.radians(max_degrees)
    s = 1.0 + (rnd[:, 1] * 2 - 1) * scale
    flip = torch.where(rnd[:, 2] < 0.5, -1.0, 1.0).to(dev)
    tx = (rnd[:, 3] * 2 - 1) * (2 * pad / w)
    ty = (rnd[:, 4] * 2 - 1) * (2 * pad / h)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
