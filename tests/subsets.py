"""Stratified subsets of the real FER2013, as symlink trees in the Kaggle layout."""

from __future__ import annotations

import random
from pathlib import Path

PER_CLASS = {"Training": 70, "PublicTest": 15, "PrivateTest": 15}  # 100 per class, 700 in all


def stratified_fer2013(src: Path, dst: Path, per_class: dict[str, int] = PER_CLASS, seed: int = 0) -> dict:
    """Link a seeded sample of ``src`` into ``dst``; return the expected {split: {class: n}}."""
    rng = random.Random(seed)
    split_of = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    expected: dict[str, dict[str, int]] = {}
    for top in ("train", "test"):
        for class_dir in sorted((src / top).iterdir()):
            files = sorted(class_dir.iterdir())
            for usage, n in per_class.items():
                pool = [f for f in files if f.name.startswith(usage + "_")]
                if not pool:
                    continue
                chosen = rng.sample(pool, min(n, len(pool)))
                for f in chosen:
                    link = dst / top / class_dir.name / f.name
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(f)
                counts = expected.setdefault(split_of[usage], {})
                counts[class_dir.name] = counts.get(class_dir.name, 0) + len(chosen)
    return expected
