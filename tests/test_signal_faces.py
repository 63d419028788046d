"""faces: real faces get 468 landmarks and a level-eyed crop; text, icons and blanks are non-faces."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from fercurate import config, schema
from fercurate.errors import FercurateError
from fercurate.signals import computed, face_model, faces, run_signals
from fercurate.signals.base import SampleTable
from tests.factories import ingest_images

SAMPLES = Path(faces.__file__).resolve().parent.parent / "sample_data" / "fer2013" / "test" / "happy"
REAL_FACES = ["PrivateTest_2390435", "PublicTest_47524154", "PrivateTest_40679257"]


def real_face(stem: str) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / f"{stem}.jpg").convert("L"))


def rotated(gray: np.ndarray, degrees: float) -> np.ndarray:
    h, w = gray.shape
    return cv2.warpAffine(gray, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h))


def text_image() -> np.ndarray:
    """Like FER2013's "this photo is unavailable" placeholders."""
    im = Image.new("L", (48, 48), 245)
    draw = ImageDraw.Draw(im)
    for y, line in enumerate(["Sorry,", "this photo", "has been", "removed"]):
        draw.text((2, 2 + 11 * y), line, fill=40)
    return np.asarray(im)


def no_entry_icon() -> np.ndarray:
    im = Image.new("L", (48, 48), 255)
    draw = ImageDraw.Draw(im)
    draw.ellipse((4, 4, 43, 43), fill=20)
    draw.rectangle((11, 20, 36, 27), fill=255)
    return np.asarray(im)


def eye_tilt_px(gray: np.ndarray) -> tuple[float, float]:
    """(vertical offset between the eye centres, their distance) as FaceMesh sees them."""
    analyzer = face_model.FaceAnalyzer(face_model.FacesParams())
    try:
        landmarks = analyzer.analyse(gray).landmarks
    finally:
        analyzer.close()
    assert landmarks is not None
    left, right = face_model.eye_centres(landmarks)
    return float(right[1] - left[1]), float(np.linalg.norm(right - left))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """One dataset of real faces (one rotated by 20 degrees) and non-faces, analysed once."""
    images = {f"real{i}": real_face(s) for i, s in enumerate(REAL_FACES)}
    images.update({"rotated": rotated(real_face(REAL_FACES[0]), 20), "text": text_image(),
                   "icon": no_entry_icon(), "blank": np.full((48, 48), 0, np.uint8)})
    ds, ids = ingest_images(tmp_path_factory.mktemp("faces") / "src", images, "t-faces-analysed")
    assert run_signals(ds, ["faces"]) == ["faces"]
    ds.reload()
    yield ds, ids
    ds.delete()


@pytest.mark.parametrize("stem", ["real0", "real1", "real2", "rotated"])
def test_a_real_face_gets_468_landmarks_a_box_and_an_aligned_crop(analysed, stem):
    ds, ids = analysed
    s = ds[ids[stem]]
    assert not s[schema.IS_NON_FACE] and s[schema.FACE_SCORE] > 0.5
    assert s[schema.ALIGNMENT] == "aligned"
    points = np.array(s[schema.FACE_LANDMARKS].keypoints[0].points, dtype=float)
    assert points.shape == (468, 2)
    visible = points[~np.isnan(points).any(axis=1)]
    assert len(visible) > 300 and visible.min() >= 0 and visible.max() <= 1
    x, y, w, h = s[schema.FACE_DETECTION].bounding_box
    assert 0 <= x and 0 <= y and x + w <= 1 + 1e-6 and y + h <= 1 + 1e-6 and w * h > 0.25
    crop_path = Path(s[schema.ALIGNED_FILEPATH])
    digest = hashlib.sha256(crop_path.read_bytes()).hexdigest()
    assert crop_path == config.media_dir(ds.name) / "aligned" / digest[:2] / f"{digest}.png"  # content-addressed
    crop = np.asarray(Image.open(crop_path))
    assert crop.shape == (64, 64) and crop.dtype == np.uint8


@pytest.mark.parametrize("stem", ["real0", "rotated"])
def test_the_aligned_crop_has_level_eyes_at_the_set_distance(analysed, stem):
    ds, ids = analysed
    s = ds[ids[stem]]
    params = face_model.FacesParams()
    # the stored landmarks (relative to the original) map the eyes onto one row...
    points = np.array(s[schema.FACE_LANDMARKS].keypoints[0].points) * 48
    m = face_model.alignment_matrix(points, params)
    left, right = (m @ [*e, 1.0] for e in face_model.eye_centres(points))
    assert abs(left[1] - right[1]) < 1e-3 and left[0] < right[0]
    # ...and FaceMesh run again on the written crop agrees
    dy, distance = eye_tilt_px(np.asarray(Image.open(s[schema.ALIGNED_FILEPATH])))
    assert abs(dy) < 1.5
    assert distance == pytest.approx(params.crop_eye_distance * params.crop_px, rel=0.15)


def test_the_rotated_face_was_tilted_before_alignment(analysed):
    ds, ids = analysed
    dy, distance = eye_tilt_px(rotated(real_face(REAL_FACES[0]), 20))
    assert abs(np.degrees(np.arcsin(dy / distance))) > 12  # so the level crop above proves a rotation
    # the stored roll says so too: about 20 degrees off the upright original's
    roll = ds[ids["rotated"]][schema.FACE_ROLL]
    assert abs(abs(roll - ds[ids["real0"]][schema.FACE_ROLL]) - 20) < 6
    assert ds[ids["blank"]][schema.FACE_ROLL] is None


@pytest.mark.parametrize("stem", ["text", "icon", "blank"])
def test_text_icons_and_blanks_are_non_faces_without_a_crop(analysed, stem):
    ds, ids = analysed
    s = ds[ids[stem]]
    assert s[schema.IS_NON_FACE] and s[schema.FACE_SCORE] == 0
    assert s[schema.ALIGNMENT] == "no_face"
    assert s[schema.ALIGNED_FILEPATH] is None and s[schema.FACE_DETECTION] is None
    assert s[schema.FACE_LANDMARKS] is None
    assert s[schema.ALIGNED_FILEPATH] is None


def test_summary_and_app_media_field(analysed):
    ds, ids = analysed
    summary = computed(ds)["faces"]["summary"]
    assert summary["total"] == 7 and summary["flagged"] == 3
    assert summary["landmarks_found"] == summary["aligned"] == 4
    assert {t["id"] for t in summary["top"][:3]} == {ids["text"], ids["icon"], ids["blank"]}
    assert [t["score"] for t in summary["top"][3:]] == sorted(t["score"] for t in summary["top"][3:])
    assert schema.ALIGNED_FILEPATH in ds.app_config.media_fields and "filepath" in ds.app_config.media_fields


def test_an_interrupted_faces_run_resumes_without_recomputing_finished_chunks(tmp_path, unique_name):
    images = {f"img{i}": rotated(real_face(REAL_FACES[i % 3]), 2 * i) for i in range(8)}  # all distinct
    ds, _ = ingest_images(tmp_path / "src", images, unique_name)
    table = SampleTable.load(ds)
    signal = faces.FacesSignal(face_model.FacesParams(chunk_size=2))  # 4 chunks over 2 worker processes
    signal.workers = 2
    work = tmp_path / "work"
    victim = Path(table.filepaths[4])  # in the third chunk
    hidden = victim.rename(victim.with_suffix(".hidden"))
    with pytest.raises(FercurateError, match=victim.name):
        signal.compute_and_write(ds, table, work)
    chunks = work / "chunks"
    saved = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunks.glob("*.npz")}
    assert saved and "chunk00002.npz" not in saved and len(saved) < 4

    hidden.rename(victim)
    summary = signal.compute_and_write(ds, table, work)
    assert sorted(p.name for p in chunks.glob("*.npz")) == [f"chunk{k:05d}.npz" for k in range(4)]
    for name, stamp in saved.items():  # finished chunks were kept, not recomputed
        p = chunks / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp
    assert summary["total"] == 8 and summary["aligned"] == 8
    assert ds.count_values(schema.ALIGNMENT) == {"aligned": 8}
    assert all(Path(p).is_file() for p in ds.values(schema.ALIGNED_FILEPATH))


def _synthetic_landmarks(eye_distance: float, lip_drop: float) -> np.ndarray:
    """Landmarks with the eye contours centred eye_distance apart on a 30-degree line
    and the upper lip lip_drop below their midpoint (the rest are never read)."""
    left_idx, right_idx = face_model.eye_indices()
    angle = np.radians(30)
    along, across = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    mid = np.array([24.0, 20.0])
    points = np.zeros((468, 2))
    points[left_idx] = mid - along * eye_distance / 2
    points[right_idx] = mid + along * eye_distance / 2
    points[face_model.UPPER_LIP] = mid + across * lip_drop
    return points


@pytest.mark.parametrize("eye_distance, lip_drop, expected_eye_distance", [
    (18.0, 18.0, 0.36 * 64),                 # frontal: the eyes set the scale
    (6.0, 24.0, 0.36 * 64 * 1.2 / 24 * 6),   # profile: the eye-to-lip drop sets it
])
def test_alignment_scales_a_turned_head_by_its_eye_to_lip_drop(eye_distance, lip_drop, expected_eye_distance):
    points = _synthetic_landmarks(eye_distance, lip_drop)
    m = face_model.alignment_matrix(points, face_model.FacesParams())
    left, right = (m @ [*e, 1.0] for e in face_model.eye_centres(points))
    lip = m @ [*points[face_model.UPPER_LIP], 1.0]
    assert left[1] == pytest.approx(right[1]) and right[0] > left[0]
    assert right[0] - left[0] == pytest.approx(expected_eye_distance)
    assert left[1] == pytest.approx(0.40 * 64) and (left[0] + right[0]) / 2 == pytest.approx(32)
    assert lip[1] > left[1]  # upright: the lip below the eyes


def test_mediapipe_native_logs_stay_off_the_terminal():
    """absl/TFLite write to fd 2 from C++ when the graphs start; none of it reaches the user."""
    import subprocess
    import sys
    code = ("import numpy as np; from fercurate.signals.faces import FaceAnalyzer, FacesParams; "
            "a = FaceAnalyzer(FacesParams()); a.analyse(np.zeros((48, 48), np.uint8)); a.close(); "
            "import sys; print('python stderr still works', file=sys.stderr)")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stderr
    assert "python stderr still works" in err
    for noise in ("InitializeLog", "XNNPACK", "inference_feedback_manager"):
        assert noise not in err, err


def test_recomputing_with_other_crop_parameters_keeps_the_crops_a_version_points_at(tmp_path, monkeypatch):
    """A crop is stored under the sha256 of its bytes: new parameters add new files and
    leave the old ones byte for byte, so a version frozen on them still exports."""
    import io as _io
    import json

    from fercurate import export, fixes, versions

    images = {f"real{i}": real_face(s) for i, s in enumerate(REAL_FACES[:2])}
    images["rotated"] = rotated(real_face(REAL_FACES[0]), 20)
    ds, ids = ingest_images(tmp_path / "src", images, "t-faces-content-addressed")
    try:
        assert run_signals(ds, ["faces"], log=lambda m: None) == ["faces"]
        fixes.propose(ds)
        fixes.decide(ds, [ids["rotated"]], schema.ACCEPT, [schema.USE_CROP], curator="ana")
        versions.freeze(ds, "v1", curator="ana")
        first = _io.BytesIO()
        export.export(ds, "v1", first)
        old = {i: Path(p) for i, p in zip(*ds.values(["id", schema.ALIGNED_FILEPATH]))}
        lines = [json.loads(x) for x in first.getvalue().decode().splitlines()[1:]]
        assert next(x for x in lines if x["id"] == ids["rotated"])["filepath"] == str(old[ids["rotated"]])
        old_bytes = {i: p.read_bytes() for i, p in old.items()}

        monkeypatch.setattr(faces.FacesSignal, "default_params", lambda self: face_model.FacesParams(crop_px=56))
        assert run_signals(ds, ["faces"], log=lambda m: None) == ["faces"]
        ds.reload()
        new = {i: Path(p) for i, p in zip(*ds.values(["id", schema.ALIGNED_FILEPATH]))}
        assert all(new[i] != old[i] and np.asarray(Image.open(new[i])).shape == (56, 56) for i in new)
        assert {i: p.read_bytes() for i, p in old.items()} == old_bytes  # untouched
        again = _io.BytesIO()
        export.export(ds, "v1", again)
        assert again.getvalue() == first.getvalue()
    finally:
        ds.delete()
