"""quality: blank, too dark, too bright, blurry and low-contrast images.

Each issue has a measurement and a threshold (in :class:`QualityParams`), both taken on
the image in grayscale, resized so that its shorter side is ``measure_px`` (48, FER's
size), so the thresholds mean the same on a 48-px FER crop and a 562-px KDEF photo.

- blank: pixel standard deviation (a constant image has none);
- dark / bright: mean pixel value;
- blurry: variance of the Laplacian divided by the mean squared gradient. The plain
  variance of the Laplacian grows with contrast and with how much of the image is edges,
  so on FER it mostly finds dim, flat faces; the ratio measures how sharp the edges
  are, whatever their number and contrast (a step edge blurred over ``s`` pixels
  scores about ``1/s**2``);
- low contrast: the 5th-95th percentile range of pixel values.

A sub-score maps its measurement ``m`` and threshold ``t`` to ``clip(0.5 * m / t, 0, 1)``
(for bright, ``m`` and ``t`` are distances below 255), so every issue is flagged exactly
when its sub-score is below 0.5. ``quality_score`` is the lowest sub-score. A blank
image is reported as blank (and dark or bright) only: blur and contrast mean nothing
without content.

Calibrated on the real FER2013 (35,887 images): the defaults flag 64 (13 blank, 18 dark,
28 bright, 16 blurry, 6 low contrast, some several): the dozen all-black images, "this photo is unavailable" placeholders and camera/warning icons, nearly
black faces, and faces blurred by heavy upscaling, while dim, pale or soft but readable
faces pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np
from tqdm import tqdm

from fercurate import schema
from fercurate.signals import register
from fercurate.images import read_gray
from fercurate.signals.base import ChunkStore, FieldWrite, SampleTable, Signal, SignalResult, chunked

ISSUES: tuple[str, ...] = tuple(schema.QUALITY_SUBSCORES)  # blank, dark, bright, blurry, low_contrast
#: issues that only make sense on an image with content
_CONTENT_ISSUES = ("blurry", "low_contrast")
FLAG_BELOW = 0.5


@dataclass
class QualityParams:
    #: pixel standard deviation below which an image is blank (near-constant)
    blank_max_std: float = 3.0
    #: mean pixel value below which an image is too dark
    dark_max_mean: float = 15.0
    #: mean pixel value above which an image is too bright
    bright_min_mean: float = 230.0
    #: var(Laplacian) / mean squared gradient below which an image is blurry
    blurry_max_sharpness: float = 1.0
    #: 5th-95th percentile range below which an image has too little contrast
    low_contrast_max_range: float = 40.0
    #: images are measured with their shorter side resized to this
    measure_px: int = 48
    #: images per saved chunk
    chunk_size: int = 4096


def to_measure_size(gray: np.ndarray, side: int) -> np.ndarray:
    """``gray`` as float32 with its shorter side resized to ``side`` (thresholds then mean the same at any size)."""
    h, w = gray.shape
    scale = side / min(h, w)
    if scale == 1:
        return gray.astype(np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, size, interpolation=interp).astype(np.float32)


def measure(gray: np.ndarray, measure_px: int = 48) -> np.ndarray:
    """[std, mean, p95 - p5 range, sharpness] of one grayscale image."""
    x = to_measure_size(gray, measure_px)
    p5, p95 = np.percentile(x, [5, 95])
    inner = (slice(1, -1), slice(1, -1))  # ignore the border's padded neighbours
    lap = cv2.Laplacian(x, cv2.CV_32F, ksize=1)[inner]
    # Sobel's 3x3 kernel is 8x a smoothed derivative
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3)[inner] / 8
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3)[inner] / 8
    grad = float(np.mean(gx * gx + gy * gy))
    sharpness = float(lap.var()) / grad if grad > 1e-6 else 0.0
    return np.array([x.std(), x.mean(), p95 - p5, sharpness], dtype=np.float64)


def subscores(m: np.ndarray, p: QualityParams) -> dict[str, np.ndarray]:
    """Issue -> score in [0, 1] (below 0.5 = flagged) from ``measure`` rows (n, 4)."""
    std, mean, rng, sharp = m.T

    def score(value, threshold):
        return np.clip(0.5 * value / threshold, 0.0, 1.0)
    return {
        "blank": score(std, p.blank_max_std),
        "dark": score(mean, p.dark_max_mean),
        "bright": score(255.0 - mean, 255.0 - p.bright_min_mean),
        "blurry": score(sharp, p.blurry_max_sharpness),
        "low_contrast": score(rng, p.low_contrast_max_range),
    }


def issues_of(scores: dict[str, np.ndarray]) -> list[list[str]]:
    """The flagged issue names of each image (see the module docstring on blanks)."""
    flags = {k: v < FLAG_BELOW for k, v in scores.items()}
    n = len(flags["blank"])
    out = []
    for i in range(n):
        names = [k for k in ISSUES if flags[k][i]]
        if flags["blank"][i]:
            names = [k for k in names if k not in _CONTENT_ISSUES]
        out.append(names)
    return out


def measure_files(paths: list[str], measure_px: int) -> dict[str, np.ndarray]:
    return {"measures": np.stack([measure(read_gray(p), measure_px) for p in paths])}


@register
class QualitySignal(Signal):
    """Blank, dark, bright, blurry and low-contrast images."""

    name = "quality"
    requires = ()
    uses_labels = False

    def default_params(self) -> QualityParams:
        return QualityParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p: QualityParams = self.params
        store = ChunkStore(work_dir / "measures")
        parts = []
        with tqdm(total=len(table), desc="quality", unit=" img") as bar:
            for k, sl in chunked(len(table), p.chunk_size):
                chunk = store.get(f"chunk{k:05d}", lambda sl=sl: measure_files(table.filepaths[sl], p.measure_px))
                parts.append(chunk["measures"])
                bar.update(sl.stop - sl.start)
        m = np.concatenate(parts) if parts else np.zeros((0, 4))
        scores = subscores(m, p)
        issues = issues_of(scores)
        overall = np.min(np.stack(list(scores.values())), axis=0) if len(m) else np.zeros(0)
        fields = [FieldWrite(field, fo.FloatField, scores[issue].round(4).tolist())
                  for issue, field in schema.QUALITY_SUBSCORES.items()]
        fields += [FieldWrite(schema.QUALITY_SCORE, fo.FloatField, overall.round(4).tolist()),
                   FieldWrite(schema.QUALITY_ISSUES, fo.ListField, issues, kwargs={"subfield": fo.StringField}),
                   FieldWrite(schema.IS_LOW_QUALITY, fo.BooleanField, [bool(x) for x in issues])]
        return SignalResult(self._summary(table, scores, overall, issues), fields)

    def _summary(self, table: SampleTable, scores: dict[str, np.ndarray], overall: np.ndarray,
                 issues: list[list[str]]) -> dict:
        flagged = [i for i, x in enumerate(issues) if x]
        worst = sorted(flagged, key=lambda i: (overall[i], i))[:10]
        return {
            "total": len(table),
            "flagged": len(flagged),
            "issues": {k: sum(k in x for x in issues) for k in ISSUES},
            "thresholds": self.params_dict(),
            "top": [{"id": table.ids[i], "filepath": table.filepaths[i], "label": table.labels[i],
                     "score": round(float(overall[i]), 4), "issues": issues[i]} for i in worst],
        }
