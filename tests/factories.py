"""Small image trees and csvs written on the fly, in each layout fercurate reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fercurate import schema


def face_like(seed: int, side: int = 48) -> np.ndarray:
    """A distinct 8-bit grey image per seed (content does not matter to the readers)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(side, side), dtype=np.uint8)


def write_image(path: Path, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(face_like(seed), mode="L").save(path, format=fmt)
    return path


def fer2013_folder(root: Path, per_class: int = 2) -> Path:
    """Kaggle layout: Training_* in train/, PublicTest_* and PrivateTest_* in test/."""
    seed = 0
    for label in schema.EMOTIONS:
        for i in range(per_class):
            for top, prefix in (("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")):
                seed += 1
                write_image(root / top / label / f"{prefix}_{1000 + seed}.jpg", seed, "JPEG")
    return root


def fer2013_csv(path: Path, rows: list[tuple[int, str]] | None = None, header: str = "emotion,pixels,Usage",
                npix: int = 2304) -> Path:
    rows = rows or [(e, u) for e in range(7) for u in ("Training", "PublicTest", "PrivateTest")]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for i, (emotion, usage) in enumerate(rows):
        pixels = " ".join(str(v) for v in face_like(i).ravel()[:npix])
        lines.append(f"{emotion},{pixels},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def kdef(root: Path, actors=((1, "F"), (26, "M"), (31, "F")), codes=("AF", "HA"), angles=("S", "HL")) -> Path:
    seed = 0
    for number, sex in actors:
        folder = root / f"A{sex}{number:02d}"
        for code in codes:
            for angle in angles:
                seed += 1
                write_image(folder / f"A{sex}{number:02d}{code}{angle}.JPG", seed, "JPEG")
    return root


def ingest_images(root: Path, images: dict[str, np.ndarray], name: str):
    """Write each image as a lossless PNG in the FER2013 layout, ingest; return (ds, stem -> id)."""
    import fiftyone as fo

    from fercurate import dataset
    from fercurate.sources import read_source

    for stem, pixels in images.items():
        path = root / "train" / "happy" / f"Training_{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    dataset.ingest(read_source(root), name)
    ds = fo.load_dataset(name)
    ids, paths = ds.values(["id", "filepath"])
    return ds, {Path(p).stem.removeprefix("Training_"): i for i, p in zip(ids, paths)}
