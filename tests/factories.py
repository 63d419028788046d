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


def planted_review_dataset(root: Path, name: str):
    """A small FER2013-layout dataset (7 classes x 2 x 3 splits = 42 samples) whose signal
    fields are set by hand, so each fix kind is proposed for known samples.

    Returns ``(ds, planted)`` with planted = {role: sample id}: "mislabeled" (angry,
    suggested happy), "ambiguous" (disgust, a flagged label whose out-of-fold probabilities
    split between angry and disgust: no clear answer), "keeper" / "duplicate" (one group, the duplicate in train),
    "nonface", "blank" (low quality), "tilted" (aligned crop, 20 degrees roll), and
    "clean" (no finding).
    """
    import fiftyone as fo

    from fercurate import dataset
    from fercurate.sources import read_source

    fer2013_folder(root, per_class=2)
    dataset.ingest(read_source(root), name)
    ds = fo.load_dataset(name)
    ids, labels, splits = ds.values(["id", "ground_truth.label", "split"])
    by = {}
    for i, lab, sp in zip(ids, labels, splits):
        by.setdefault((lab, sp), []).append(i)
    planted = {"mislabeled": by[("angry", "train")][0], "keeper": by[("sad", "test")][0],
               "duplicate": by[("sad", "train")][0], "nonface": by[("fear", "train")][0],
               "blank": by[("neutral", "train")][0], "tilted": by[("happy", "train")][0],
               "clean": by[("surprise", "train")][0], "ambiguous": by[("disgust", "train")][0]}
    classes = list(schema.EMOTIONS)
    crop = root / "aligned.png"
    write_image(crop, 999)

    def one_hot(label: str, p: float = 0.8) -> list[float]:
        rest = (1 - p) / (len(classes) - 1)
        return [p if c == label else rest for c in classes]

    def split(a: str, b: str) -> list[float]:
        return [0.42 if c == a else 0.33 if c == b else 0.25 / (len(classes) - 2) for c in classes]

    issue = (planted["mislabeled"], planted["ambiguous"])
    values = {
        schema.IS_LABEL_ISSUE: {i: i in issue for i in ids},
        schema.LABEL_QUALITY: {i: 0.05 if i == planted["mislabeled"] else 0.55 if i == planted["ambiguous"] else 0.8
                               for i in ids},
        schema.SUGGESTED_LABEL: {i: fo.Classification(label="happy" if i == planted["mislabeled"] else lab, confidence=0.8)
                                 for i, lab in zip(ids, labels)},
        schema.OOF_PROBS: {i: (split("angry", "disgust") if i == planted["ambiguous"]
                               else one_hot("happy" if i == planted["mislabeled"] else lab)) for i, lab in zip(ids, labels)},
        schema.DUP_GROUP: {i: ("g1" if i in (planted["keeper"], planted["duplicate"]) else None) for i in ids},
        schema.DUP_KEEPER: {i: i == planted["keeper"] for i in ids},
        schema.IS_DUPLICATE: {i: i == planted["duplicate"] for i in ids},
        schema.DUP_SCORE: {i: 0.0 if i == planted["duplicate"] else 1.0 for i in ids},
        schema.DUP_KIND: {i: ("exact" if i in (planted["keeper"], planted["duplicate"]) else None) for i in ids},
        schema.DUP_LABEL_CONFLICT: {i: False for i in ids},
        schema.DUP_CROSS_SPLIT: {i: i in (planted["keeper"], planted["duplicate"]) for i in ids},
        schema.IS_NON_FACE: {i: i == planted["nonface"] for i in ids},
        schema.FACE_SCORE: {i: 0.0 if i == planted["nonface"] else 0.9 for i in ids},
        schema.IS_UNUSABLE: {i: i == planted["nonface"] for i in ids},
        schema.USABILITY: {i: 0.1 if i == planted["nonface"] else 0.9 for i in ids},
        schema.USABILITY_REASONS: {i: (["no_face", "graphic"] if i == planted["nonface"] else []) for i in ids},
        schema.IS_LOW_QUALITY: {i: i == planted["blank"] for i in ids},
        schema.QUALITY_SCORE: {i: 0.1 if i == planted["blank"] else 0.9 for i in ids},
        schema.QUALITY_ISSUES: {i: (["blank"] if i == planted["blank"] else []) for i in ids},
        schema.ALIGNED_FILEPATH: {i: (str(crop) if i == planted["tilted"] else None) for i in ids},
        schema.FACE_ROLL: {i: (20.0 if i == planted["tilted"] else 1.0) for i in ids},
    }
    for field, by_id in values.items():
        ds.set_values(field, by_id, key_field="id")
    return ds, planted


def findings_dataset(root: Path, name: str):
    """Ingest 42 synthetic images (6 per class), plant findings, propose fixes."""
    import fiftyone as fo

    from fercurate import dataset
    from fercurate.sources import read_source

    dataset.ingest(read_source(fer2013_folder(root, per_class=2)), name)
    ds = fo.load_dataset(name)
    return ds, plant_findings(ds)


def plant_findings(ds) -> dict[str, str]:
    """Set signal fields by hand on an ingested dataset (>= 41 samples, 7 classes) and
    propose fixes; returns the planted roles -> sample id: ``issue0..2`` (label issues
    suggesting another class), ``keeper``/``dup`` (a duplicate pair), ``nonface``,
    ``blurry``, and ``clean`` (no finding)."""
    import fiftyone as fo

    from fercurate import fixes

    ids, labels = ds.values(["id", f"{schema.GROUND_TRUTH}.label"])
    roles = {"issue0": ids[0], "issue1": ids[7], "issue2": ids[14], "keeper": ids[20], "dup": ids[21],
             "nonface": ids[28], "blurry": ids[35], "clean": ids[40]}
    classes = list(schema.EMOTIONS)
    ds.info[schema.INFO_CLASSES] = classes
    ds.save()
    label_of = dict(zip(ids, labels))

    issue, quality, suggested, probs = {}, {}, {}, {}
    for k, role in enumerate(("issue0", "issue1", "issue2")):
        sid = roles[role]
        other = classes[(classes.index(label_of[sid]) + 1) % len(classes)]
        p = [0.02] * len(classes)
        p[classes.index(other)] = 0.8
        p[classes.index(label_of[sid])] = 0.08
        issue[sid], quality[sid] = True, 0.05 + 0.01 * k
        suggested[sid], probs[sid] = fo.Classification(label=other, confidence=0.8), p
    set_fields(ds, {schema.IS_LABEL_ISSUE: issue, schema.LABEL_QUALITY: quality,
                    schema.SUGGESTED_LABEL: suggested, schema.OOF_PROBS: probs})
    pair = [roles["keeper"], roles["dup"]]
    set_fields(ds, {schema.DUP_GROUP: {i: "g1" for i in pair}, schema.DUP_KIND: {i: "exact" for i in pair},
                    schema.DUP_KEEPER: {roles["keeper"]: True, roles["dup"]: False},
                    schema.IS_DUPLICATE: {roles["keeper"]: False, roles["dup"]: True},
                    schema.DUP_SCORE: {i: 0.0 for i in pair},
                    schema.DUP_LABEL_CONFLICT: {i: label_of[pair[0]] != label_of[pair[1]] for i in pair},
                    schema.DUP_CROSS_SPLIT: {i: False for i in pair}})
    set_fields(ds, {schema.IS_NON_FACE: {roles["nonface"]: True}, schema.FACE_SCORE: {roles["nonface"]: 0.0},
                    schema.IS_UNUSABLE: {roles["nonface"]: True}, schema.USABILITY: {roles["nonface"]: 0.1},
                    schema.USABILITY_REASONS: {roles["nonface"]: ["no_face", "graphic"]}})
    set_fields(ds, {schema.IS_LOW_QUALITY: {roles["blurry"]: True}, schema.QUALITY_SCORE: {roles["blurry"]: 0.1},
                    schema.QUALITY_ISSUES: {roles["blurry"]: ["blurry"]}})
    fixes.propose(ds)
    return roles


def set_fields(ds, values: dict[str, dict]) -> None:
    for field, by_id in values.items():
        ds.set_values(field, by_id, key_field="id")
