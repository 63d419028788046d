"""Tiny fercurate manifests over tiny PNG faces, written the way `fercurate export` writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fercurate.manifest import FORMAT, FORMAT_VERSION, content_hash, dumps, sha256_file

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def class_image(label_index: int, seed: int) -> np.ndarray:
    """Noise plus a class-dependent bright band, so a model can learn something in one epoch."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 120, size=(48, 48)).astype(np.uint8)
    img[label_index * 6:label_index * 6 + 6, :] = 240
    return img


def manifest_lines(root: Path, per_class: int = 8, splits: tuple[str, ...] = ("train", "val", "test"),
                   policy: dict | None = None, flip_every: int = 0, soft: bool = False) -> list[str]:
    """Header + sample lines (each ending in a newline); images are written under root.

    ``flip_every`` > 0 gives every n-th sample a different original_label (a curated relabel);
    ``soft`` gives every sample a soft_label: 0.7 on its label, 0.3 on the next class.
    """
    samples, seed = [], 0
    for split in splits:
        for ci, label in enumerate(CLASSES):
            for i in range(per_class):
                seed += 1
                path = root / split / label / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(class_image(ci, seed), mode="L").save(path)
                original = CLASSES[(ci + 1) % len(CLASSES)] if flip_every and seed % flip_every == 0 else label
                samples.append({"id": f"s{seed}", "filepath": str(path), "label": label, "split": split,
                                "weight": 1.0, "original_label": original, "original_filepath": str(path),
                                "source": {"usage": split}, "sha256": sha256_file(str(path))})
                if soft:
                    samples[-1]["soft_label"] = [0.7 if k == ci else 0.3 if k == (ci + 1) % len(CLASSES) else 0.0
                                                 for k in range(len(CLASSES))]
    lines = [dumps(s) for s in samples]
    counts = {sp: {c: sum(1 for s in samples if s["split"] == sp and s["label"] == c) for c in CLASSES} for sp in splits}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "dataset": "tiny", "version": "tiny_v1",
              "content_hash": content_hash(lines), "num_samples": len(lines), "classes": CLASSES,
              "split_counts": counts, "policy": policy or {"name": "none"}}
    return [dumps(header)] + lines


def write_manifest(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path
