"""Is an image a face one can read an emotion from? Pure rules, no files, no database.

Crowd annotators (FER+ votes on FER2013's val split) drop an image when there is no face
to read: blank frames, "photo unavailable" placeholders and their text, warning and
camera icons, a tie or a dark scene, or a face too small in a larger picture. They keep
what no face model sees but a person does (profiles, hands over the face, heavy
shadows), drawings and cartoons with an expression, and rotated faces.

So "no face found" alone is weak evidence (on FER2013 about two in three of the images
MediaPipe misses are real faces), and the rules combine it with what separates a
placeholder from a photograph: **flat areas**. An icon, a text page or a blank frame is
mostly pixels with no gradient at all; a photograph, even of a dark face on a black
background, has sensor noise and shading almost everywhere. ``flat_share`` measures it.

Sub-scores in [0, 1], each 0.5 exactly at its threshold (the signals' convention: lower
is worse, below 0.5 flagged):

- ``graphic``: ``flat_share`` against ``no_face_graphic_min_flat`` where no model found
  a face, and against the much higher ``face_graphic_min_flat`` where one did (a detector
  firing on an icon);
- ``tiny_face``: the detected face spans fewer than ``tiny_max_px`` pixels (geometric
  mean of its box's sides): too few to read an expression, usually a small face in a
  larger scene;
- no face: caps the score at 0.75, below an ordinary face (0.9-1.0), so a curator sorting
  by ``usability`` sees them early, but it flags nothing by itself.

``usability`` is the lowest of them; ``reasons`` name the sub-scores below 0.5 (and
``no_face`` when no model found one) on flagged images only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fercurate.signals.quality import to_measure_size

FLAG_BELOW = 0.5
#: the score an image with no detected face gets at most
NO_FACE_CAP = 0.75


@dataclass
class UsabilityParams:
    #: flat share above which an image no model finds a face in is a graphic (icon, text, blank)
    no_face_graphic_min_flat: float = 0.2
    #: ... and above which it is one even though a face detector fired on it
    face_graphic_min_flat: float = 0.6
    #: a detected face whose box spans fewer pixels than this (geometric mean of its sides) is tiny
    tiny_max_px: float = 18.0
    #: a pixel is flat when |dx| + |dy| to its right and lower neighbours is at most this (0-255)
    flat_max_step: float = 2.0
    #: images are measured with their shorter side resized to this (FER's 48 px)
    measure_px: int = 48
    #: images per saved chunk
    chunk_size: int = 4096


def flat_share(gray: np.ndarray, measure_px: int = 48, max_step: float = 2.0) -> float:
    """Share of pixels with (almost) no gradient, on the image at ``measure_px``.

    Placeholders, icons, text pages and blank frames score high (0.3-1.0); photographs of
    faces, even dark ones, stay low (99 % of FER2013 under 0.26).
    """
    x = to_measure_size(gray, measure_px)
    if x.shape[0] < 2 or x.shape[1] < 2:
        return 1.0
    step = np.abs(np.diff(x, axis=1))[:-1, :] + np.abs(np.diff(x, axis=0))[:, :-1]
    return float((step <= max_step).mean())


def _ramp(value: np.ndarray, threshold: np.ndarray | float, scale: float) -> np.ndarray:
    """0.5 at ``threshold``, rising by ``scale`` per unit above it, clipped to [0, 1]."""
    return np.clip(0.5 + (value - threshold) * scale, 0.0, 1.0)


def subscores(flat: np.ndarray, no_face: np.ndarray, face_px: np.ndarray,
              p: UsabilityParams) -> dict[str, np.ndarray]:
    """Sub-score name -> (n,) scores; ``face_px`` is NaN where there is no detector box."""
    flat, no_face = np.asarray(flat, float), np.asarray(no_face, bool)
    face_px = np.asarray(face_px, float)
    threshold = np.where(no_face, p.no_face_graphic_min_flat, p.face_graphic_min_flat)
    graphic = _ramp(-flat, -threshold, 1.25)
    tiny = np.where(np.isnan(face_px), 1.0, _ramp(np.nan_to_num(face_px), p.tiny_max_px, 0.05))
    return {"graphic": graphic, "tiny_face": tiny}


def usability(flat: np.ndarray, no_face: np.ndarray, face_px: np.ndarray,
              p: UsabilityParams) -> tuple[np.ndarray, list[list[str]]]:
    """(usability (n,), reasons per image) from the measurements; see the module docstring."""
    no_face = np.asarray(no_face, bool)
    subs = subscores(flat, no_face, face_px, p)
    score = np.minimum.reduce([subs["graphic"], subs["tiny_face"], np.where(no_face, NO_FACE_CAP, 1.0)])
    reasons: list[list[str]] = []
    for i in range(len(score)):
        if score[i] >= FLAG_BELOW:
            reasons.append([])
            continue
        found = ["no_face"] if no_face[i] else []
        reasons.append(found + [k for k in ("graphic", "tiny_face") if subs[k][i] < FLAG_BELOW])
    return score, reasons


def face_side_px(box: list[float] | None, width: int, height: int) -> float:
    """Geometric mean of a relative detector box's sides, in pixels (NaN without a box)."""
    if not box:
        return float("nan")
    return float(np.sqrt(max(box[2], 0.0) * width * max(box[3], 0.0) * height))
