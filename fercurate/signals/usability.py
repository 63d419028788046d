"""usability: one score and flag for "no face to read an emotion from", with its reasons.

Reads what ``faces`` found (``is_non_face``, the detector box) and measures each image's
flat share (:mod:`fercurate.signals.usability_rules` holds the rules and why). Writes
``usability`` (lower = less usable, below 0.5 flagged), ``is_unusable``,
``usability_reasons`` (``no_face``, ``graphic``, ``tiny_face``) and ``flat_share``. The
``drop_nonface`` fix (queue "unusable image") is proposed from ``is_unusable``, with the
reasons as its evidence and ``usability`` as its score.

Measured against the crowd on FER2013's val split and by looking at every flagged image
of the full data set: see the README ("unusable images").
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np
from tqdm import tqdm

from fercurate import schema
from fercurate.images import read_gray
from fercurate.signals import register
from fercurate.signals.base import ChunkStore, FieldWrite, SampleTable, Signal, SignalResult, chunked
from fercurate.signals.usability_rules import UsabilityParams, face_side_px, flat_share, usability


def measure_files(paths: list[str], p: UsabilityParams) -> dict[str, np.ndarray]:
    """flat share and (height, width) of each image."""
    flat, shape = [], []
    for path in paths:
        gray = read_gray(path)
        flat.append(flat_share(gray, p.measure_px, p.flat_max_step))
        shape.append(gray.shape)
    return {"flat": np.array(flat, np.float64), "shape": np.array(shape, np.int64).reshape(-1, 2)}


@register
class UsabilitySignal(Signal):
    """No face, graphic (icon, text, blank) or tiny face: images with no expression to read."""

    name = "usability"
    requires = ("faces",)
    uses_labels = False

    def default_params(self) -> UsabilityParams:
        return UsabilityParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p: UsabilityParams = self.params
        store = ChunkStore(work_dir / "measures")
        flats, shapes = [], []
        with tqdm(total=len(table), desc="usability", unit=" img") as bar:
            for k, sl in chunked(len(table), p.chunk_size):
                chunk = store.get(f"chunk{k:05d}", lambda sl=sl: measure_files(table.filepaths[sl], p))
                flats.append(chunk["flat"])
                shapes.append(chunk["shape"])
                bar.update(sl.stop - sl.start)
        flat = np.concatenate(flats) if flats else np.zeros(0)
        shape = np.concatenate(shapes) if shapes else np.zeros((0, 2), np.int64)
        by_id = dict(zip(*ds.values(["id", schema.IS_NON_FACE])))
        boxes = dict(zip(*ds.values(["id", f"{schema.FACE_DETECTION}.bounding_box"])))
        no_face = np.array([bool(by_id.get(i)) for i in table.ids], bool)
        face_px = np.array([face_side_px(boxes.get(i), int(w), int(h))
                            for i, (h, w) in zip(table.ids, shape)], np.float64)
        score, reasons = usability(flat, no_face, face_px, p)
        fields = [FieldWrite(schema.FLAT_SHARE, fo.FloatField, flat.round(4).tolist()),
                  FieldWrite(schema.USABILITY, fo.FloatField, score.round(4).tolist()),
                  FieldWrite(schema.USABILITY_REASONS, fo.ListField, reasons, kwargs={"subfield": fo.StringField}),
                  FieldWrite(schema.IS_UNUSABLE, fo.BooleanField, [bool(r) for r in reasons])]
        return SignalResult(self._summary(table, flat, score, reasons, no_face), fields)

    def _summary(self, table: SampleTable, flat: np.ndarray, score: np.ndarray, reasons: list[list[str]],
                 no_face: np.ndarray) -> dict:
        flagged = [i for i, r in enumerate(reasons) if r]
        worst = sorted(flagged, key=lambda i: (score[i], i))[:10]
        return {
            "total": len(table),
            "flagged": len(flagged),
            "reasons": {k: sum(k in r for r in reasons) for k in schema.USABILITY_REASON_NAMES},
            "no_face_not_flagged": int(no_face.sum()) - sum("no_face" in r for r in reasons),
            "thresholds": self.params_dict(),
            "top": [{"id": table.ids[i], "filepath": table.filepaths[i], "label": table.labels[i],
                     "score": round(float(score[i]), 4), "reasons": reasons[i]} for i in worst],
        }
