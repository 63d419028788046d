"""faces: is there a face, where are its landmarks, and an eye-aligned crop of it.

MediaPipe's FaceDetection gives a confidence and a box; FaceMesh gives 468 landmarks.
Both models expect faces well inside a larger picture, while FER images are tight
48-px crops, so each image is put on a black canvas (a border of half its side on each
side, 24 px for FER) and enlarged to at least 96 px first: on real FER2013 this lifts
FaceMesh from 92 % to 97 % of the images (NOTES-ENV). Every coordinate is mapped back
to the original image.

Rules (documented in the summary too):

- ``is_non_face``: neither FaceDetection nor FaceMesh finds a face, nor a second, more
  permissive FaceMesh pass (``retry_mesh_confidence``) run on just those images. One
  finding a face is enough: all of them miss real faces at 48 px. On FER2013 about 250
  images (0.7 %) are flagged: blanks, "photo unavailable" text, icons, watermark-only
  crops, and, for most of them, real faces no model sees (profiles, hands over the
  face, heavy occlusion, some drawings) — a curator decides.
- ``face_landmarks``: one ``fo.Keypoint`` with all 468 points in FaceMesh order, relative
  to the original image; points that fall outside it (the mesh runs past a tight crop's
  chin or forehead) are NaN, FiftyOne's convention for invisible keypoints, so the App
  does not draw them and index ``i`` is always landmark ``i``.
- aligned crop: only from FaceMesh landmarks (``alignment="aligned"``). A similarity
  transform puts the eye centres level, ``crop_eye_distance`` apart (a turned head is
  scaled by its eye-to-lip drop instead, see :func:`alignment_matrix`), at ``crop_eye_y``;
  the crop is grayscale, ``crop_px`` square, and pixels from outside the original image
  are black. No landmarks means no crop (``"no_landmarks"`` when only the detector or the
  retry pass found a face, ``"no_face"`` when nothing did): a crop is never guessed.

What MediaPipe finds on one image and the alignment itself are
:mod:`fercurate.signals.face_model` (pure image work); this module runs it over a dataset,
saves crops and writes the fields. Work runs in ``workers`` processes (each with its own MediaPipe graphs) over chunks
saved through :class:`ChunkStore`; a chunk writes its crops when it is computed, so a
resumed run neither recomputes nor rewrites finished chunks. A crop is saved under the
sha256 of its bytes (``aligned/ab/ab12….png``): recomputing with other parameters adds
new files and never overwrites or deletes one a frozen version points at.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import fiftyone as fo
import numpy as np
from bson import ObjectId
from PIL import Image
from tqdm import tqdm

from fercurate import config, schema
from fercurate.errors import FercurateError
from fercurate.signals import register
from fercurate.signals.base import ChunkStore, FieldWrite, SampleTable, Signal, SignalResult, chunked
from fercurate.images import read_gray
from fercurate.signals.face_model import N_LANDMARKS, FaceAnalyzer, FacesParams, eye_indices, aligned_crop

#: a sample's ``alignment``: crop made, nothing found, or a face without landmarks (no crop)
ALIGNED, NO_FACE, NO_LANDMARKS = "aligned", "no_face", "no_landmarks"


def eye_roll(ds: fo.Dataset, table: SampleTable, eye_vector: np.ndarray) -> list[float | None]:
    """Each image's eye-line angle in degrees (None without landmarks): how much the
    aligned crop rotates it, one of the reasons the review proposes using the crop.
    ``eye_vector`` is in relative coordinates, so it is scaled back to pixels first."""
    ids, widths, heights = ds.values(["id", "metadata.width", "metadata.height"])
    size = {i: (w or 1, h or 1) for i, w, h in zip(ids, widths, heights)}
    d = eye_vector * np.array([size[i] for i in table.ids])
    roll = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    return [None if np.isnan(r) else round(float(r), 2) for r in roll]


def _landmark_chunks(table: SampleTable, store: ChunkStore, keys: list[tuple[str, slice]]):
    """(ids, keypoint documents) of each saved chunk, loaded one at a time."""
    for key, sl in tqdm(keys, desc="faces: writing landmarks", unit=" chunk"):
        yield table.ids[sl], _keypoints_docs(store.load(key)["landmarks"])


def register_media_field(ds: fo.Dataset) -> None:
    """Let the App show the aligned crop (settings menu: media field), falling back to
    the original image where there is no crop."""
    fields = list(ds.app_config.media_fields or ["filepath"])
    if schema.ALIGNED_FILEPATH not in fields:
        ds.app_config.media_fields = fields + [schema.ALIGNED_FILEPATH]
    ds.app_config.media_fallback = True
    ds.save()


def crop_path(crop_dir: Path, digest: str) -> Path:
    """Where the crop with these bytes lives: named by its sha256, so a crop is never
    overwritten by other bytes and a frozen version that points at it stays exact."""
    return crop_dir / digest[:2] / f"{digest}.png"


def write_crop(crop: np.ndarray, crop_dir: Path) -> str:
    """Save a crop under its content address (once); returns its sha256."""
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="PNG")
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = crop_path(crop_dir, digest)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a reader never sees half a crop
    return digest


def analyse_chunk(analyzer: FaceAnalyzer, ids: list[str], paths: list[str], crop_dir: Path) -> dict[str, np.ndarray]:
    """Run MediaPipe on one chunk and write its aligned crops (content-addressed).

    Returns arrays relative to each original image: face_score (n,), box (n, 4) and
    landmarks (n, 468, 2), NaN where nothing was found, and crop_sha256 (n,), "" where
    there is no crop. A crop is written exactly for the images with landmarks; crops of
    earlier runs are left in place (versions may point at them).
    """
    n = len(ids)
    out = {"face_score": np.zeros(n, np.float32), "seen_on_retry": np.zeros(n, bool),
           "box": np.full((n, 4), np.nan, np.float32),
           "landmarks": np.full((n, N_LANDMARKS, 2), np.nan, np.float32), "crop_sha256": np.full(n, "", "<U64")}
    for i, (sample_id, path) in enumerate(zip(ids, paths)):
        gray = read_gray(path)
        h, w = gray.shape
        res = analyzer.analyse(gray)
        out["face_score"][i] = res.face_score
        out["seen_on_retry"][i] = res.seen_on_retry
        if res.box is not None:
            out["box"][i] = res.box / [w, h, w, h]
        if res.landmarks is not None:
            out["landmarks"][i] = res.landmarks / [w, h]
            out["crop_sha256"][i] = write_crop(aligned_crop(gray, res.landmarks, analyzer.params), crop_dir)
    return out


_ANALYZER: FaceAnalyzer | None = None  # one per worker process


def _start_worker(params: FacesParams) -> None:
    global _ANALYZER
    _ANALYZER = FaceAnalyzer(params)


def _run_task(task: tuple[str, list[str], list[str], Path]) -> tuple[str, dict[str, np.ndarray]]:
    key, ids, paths, crop_dir = task
    return key, analyse_chunk(_ANALYZER, ids, paths, crop_dir)


def run_chunks(tasks: list[tuple[str, list[str], list[str], Path]], params: FacesParams,
               store: ChunkStore, workers: int, bar: tqdm) -> None:
    """Compute and save every task's chunk, in ``workers`` processes when it pays.

    Processes are spawned, not forked: the parent holds MongoDB, OpenCV and tqdm threads
    that a forked child would inherit in an unknown state. A worker that cannot start
    breaks the pool at once (``ProcessPoolExecutor``) instead of being respawned forever.
    """
    if workers <= 1 or len(tasks) <= 1:
        _start_worker(params)
        try:
            for task in tasks:
                key, arrays = _run_task(task)
                store.save(key, arrays)
                bar.update(len(task[1]))
        finally:
            _ANALYZER.close()
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx, initializer=_start_worker,
                             initargs=(params,)) as pool:
        futures = {pool.submit(_run_task, task): len(task[1]) for task in tasks}
        try:
            for future in as_completed(futures):
                key, arrays = future.result()
                store.save(key, arrays)
                bar.update(futures[future])
        except BrokenProcessPool as e:
            raise FercurateError(
                "faces: a MediaPipe worker process died; when calling fercurate from your own script, "
                "put the call under 'if __name__ == \"__main__\":' (workers re-import the script)") from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _detection(box: np.ndarray, score: float) -> fo.Detection | None:
    if np.isnan(box[0]):
        return None
    x0, y0 = np.clip(box[:2], 0, 1)
    x1, y1 = np.clip(box[:2] + box[2:], 0, 1)
    return fo.Detection(label="face", bounding_box=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                        confidence=round(float(score), 4))


def _keypoints_docs(landmarks: np.ndarray) -> list[dict | None]:
    """``fo.Keypoints`` documents, serialized, for a chunk of (n, 468, 2) landmarks.

    Built from one serialized template rather than one ``fo.Keypoint`` per sample:
    mongoengine converts the 468 points one by one in Python, ~20 ms a sample, which
    on FER2013 is 12 minutes; the documents it would produce are identical.
    """
    template = fo.Keypoints(keypoints=[fo.Keypoint(label="face", points=[])]).to_mongo().to_dict()
    keypoint = template["keypoints"][0]
    docs: list[dict | None] = []
    for points in landmarks.astype(np.float64):
        if np.isnan(points[0, 0]):
            docs.append(None)
            continue
        points[((points < 0) | (points > 1)).any(axis=1)] = np.nan  # outside the image: invisible
        docs.append({**template, "keypoints": [{**keypoint, "_id": ObjectId(), "points": points.round(5).tolist()}]})
    return docs


@register
class FacesSignal(Signal):
    """MediaPipe face detection and landmarks, not-a-face flags, eye-aligned face crops."""

    name = "faces"
    requires = ()
    uses_labels = False
    version = 2  # 2: content-addressed crops (chunks saved by version 1 lack crop_sha256)
    #: worker processes, each with its own MediaPipe graphs (not a parameter: results do not depend on it)
    workers: int = 2

    def default_params(self) -> FacesParams:
        return FacesParams()

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p: FacesParams = self.params
        crop_dir = config.media_dir(ds.name) / "aligned"
        crop_dir.mkdir(parents=True, exist_ok=True)
        store = ChunkStore(work_dir / "chunks")
        keys = [(f"chunk{k:05d}", sl) for k, sl in chunked(len(table), p.chunk_size)]
        tasks = [(key, table.ids[sl], table.filepaths[sl], crop_dir) for key, sl in keys if not store.has(key)]
        with tqdm(total=len(table), desc="faces (MediaPipe)", unit=" img") as bar:
            bar.update(len(table) - sum(len(t[1]) for t in tasks))
            run_chunks(tasks, p, store, self.workers, bar)
        res = _load_results(store, keys)
        non_face = (res["face_score"] == 0) & ~res["has_mesh"] & ~res["seen_on_retry"]
        status = np.where(res["has_mesh"], ALIGNED, np.where(non_face, NO_FACE, NO_LANDMARKS))
        fields = [
            FieldWrite(schema.FACE_SCORE, fo.FloatField, res["face_score"].round(4).astype(float).tolist()),
            FieldWrite(schema.FACE_DETECTION, fo.EmbeddedDocumentField,
                       [_detection(b, s) for b, s in zip(res["box"], res["face_score"])],
                       kwargs={"embedded_doc_type": fo.Detection}),
            FieldWrite(schema.IS_NON_FACE, fo.BooleanField, non_face.tolist()),
            FieldWrite(schema.ALIGNMENT, fo.StringField, status.tolist()),
            FieldWrite(schema.FACE_ROLL, fo.FloatField, eye_roll(ds, table, res["eye_vector"])),
            FieldWrite(schema.ALIGNED_FILEPATH, fo.StringField,
                       [str(crop_path(crop_dir, d)) if d else None for d in res["crop_sha256"].tolist()]),
            # chunk by chunk (all at once would take gigabytes as Python objects), after the
            # small fields (each update rewrites the whole sample, ~15 kB with landmarks);
            # validate=False lets the serialized documents through as they are
            FieldWrite(schema.FACE_LANDMARKS, fo.EmbeddedDocumentField, chunks=lambda: _landmark_chunks(table, store, keys),
                       validate=False, kwargs={"embedded_doc_type": fo.Keypoints}),
        ]
        return SignalResult(self._summary(table, res["face_score"], non_face, res["has_mesh"]), fields,
                            finish=register_media_field)

    def _summary(self, table: SampleTable, face_score: np.ndarray, non_face: np.ndarray,
                 has_mesh: np.ndarray) -> dict:
        order = sorted(range(len(table)), key=lambda i: (not non_face[i], face_score[i], i))[:10]
        return {
            "total": len(table),
            "flagged": int(non_face.sum()),
            "face_detected": int((face_score > 0).sum()),
            "landmarks_found": int(has_mesh.sum()),
            "aligned": int(has_mesh.sum()),
            "no_landmarks": int((~has_mesh & ~non_face).sum()),
            "non_face_by_class": _count_by(table.labels, non_face),
            "non_face_by_split": _count_by(table.splits, non_face),
            "rule": "non-face = neither FaceDetection nor FaceMesh (nor its permissive retry) finds a face; "
                    "crop only from FaceMesh landmarks",
            "params": self.params_dict(),
            "top": [{"id": table.ids[i], "filepath": table.filepaths[i], "label": table.labels[i],
                     "score": round(float(face_score[i]), 4)} for i in order],
        }


def _load_results(store: ChunkStore, keys: list[tuple[str, slice]]) -> dict[str, np.ndarray]:
    """face_score, seen_on_retry, box, has_mesh and eye_vector (right minus left eye centre,
    relative coordinates) of every sample, from the saved chunks."""
    parts: dict[str, list[np.ndarray]] = {"face_score": [], "seen_on_retry": [], "box": [], "has_mesh": [],
                                          "eye_vector": [], "crop_sha256": []}
    left, right = eye_indices()
    for key, _ in keys:
        arrays = store.load(key)
        arrays["has_mesh"] = ~np.isnan(arrays["landmarks"][:, 0, 0])
        arrays["eye_vector"] = arrays["landmarks"][:, right].mean(axis=1) - arrays["landmarks"][:, left].mean(axis=1)
        for k in parts:
            parts[k].append(arrays[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _count_by(keys: list[str], mask: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, m in zip(keys, mask):
        if m:
            out[k] = out.get(k, 0) + 1
    return out
