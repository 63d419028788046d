"""quality: planted blank, dark, bright, low-contrast and blurred images are found; real faces pass."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fercurate import schema
from fercurate.errors import FercurateError
from fercurate.signals import computed, run_signals
from fercurate.signals import quality
from fercurate.signals.base import SampleTable
from tests.factories import ingest_images

SAMPLES = Path(quality.__file__).resolve().parent.parent / "sample_data" / "fer2013" / "test" / "happy"
REAL_FACES = ["PrivateTest_2390435", "PublicTest_47524154", "PrivateTest_40679257", "PrivateTest_64512674"]


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def real_face(stem: str) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / f"{stem}.jpg").convert("L"))


def planted_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    face = real_face(REAL_FACES[0]).astype(np.float64)
    images = {f"real{i}": real_face(s) for i, s in enumerate(REAL_FACES)}
    images.update({
        "blank": np.full((48, 48), 128, np.uint8),
        "nearconstant": _u8(128 + rng.integers(-2, 3, size=(48, 48))),
        "dark": _u8(face * 10 / face.mean()),                                  # mean 10
        "bright": _u8(255 - (255 - face) * 12 / (255 - face.mean())),          # mean 243
        "lowcontrast": _u8(120 + face * 30 / 255),                             # range ~20
        "blurred": cv2.GaussianBlur(real_face(REAL_FACES[0]), (0, 0), 1.5),
    })
    return images


@pytest.fixture
def planted(tmp_path, unique_name):
    ds, ids = ingest_images(tmp_path / "src", planted_images(), unique_name)
    assert run_signals(ds, ["quality"]) == ["quality"]
    ds.reload()
    return ds, ids


def test_blank_and_near_constant_images_are_flagged_blank_only(planted):
    ds, ids = planted
    for stem in ("blank", "nearconstant"):
        s = ds[ids[stem]]
        assert s[schema.IS_LOW_QUALITY] and s[schema.QUALITY_ISSUES] == ["blank"]
        assert s[schema.QUALITY_SUBSCORES["blank"]] < 0.5 and s[schema.QUALITY_SCORE] < 0.5


def test_dark_bright_and_low_contrast_images_are_flagged_for_their_issue(planted):
    ds, ids = planted
    for stem, issue in (("dark", "dark"), ("bright", "bright"), ("lowcontrast", "low_contrast")):
        s = ds[ids[stem]]
        assert issue in s[schema.QUALITY_ISSUES] and "blank" not in s[schema.QUALITY_ISSUES]
        assert s[schema.QUALITY_SUBSCORES[issue]] < 0.5
        assert s[schema.QUALITY_SCORE] == min(s[f] for f in schema.QUALITY_SUBSCORES.values())
    assert "dark" not in ds[ids["bright"]][schema.QUALITY_ISSUES]
    assert "bright" not in ds[ids["dark"]][schema.QUALITY_ISSUES]


def test_real_faces_pass_and_a_blurred_copy_scores_blurrier(planted):
    ds, ids = planted
    for i in range(len(REAL_FACES)):
        s = ds[ids[f"real{i}"]]
        assert not s[schema.IS_LOW_QUALITY] and s[schema.QUALITY_ISSUES] == []
        assert s[schema.QUALITY_SCORE] >= 0.5
    blurry = schema.QUALITY_SUBSCORES["blurry"]
    blurred, sharp = ds[ids["blurred"]], ds[ids["real0"]]
    assert blurred[blurry] < sharp[blurry]
    assert blurred[schema.QUALITY_ISSUES] == ["blurry"]


def test_summary_counts_issues_and_lists_the_worst_first(planted):
    ds, ids = planted
    summary = computed(ds)["quality"]["summary"]
    assert summary["total"] == 10 and summary["flagged"] == 6
    assert summary["issues"] == {"blank": 2, "dark": 1, "bright": 1, "blurry": 1, "low_contrast": 3}
    scores = [t["score"] for t in summary["top"]]
    assert scores == sorted(scores) and len(scores) == 6
    assert {t["id"] for t in summary["top"]} == {ids[s] for s in
                                                 ("blank", "nearconstant", "dark", "bright", "lowcontrast", "blurred")}


def test_measurements_do_not_depend_on_image_size():
    face = real_face(REAL_FACES[0])
    big = cv2.resize(face, (480, 480), interpolation=cv2.INTER_NEAREST)
    small, large = quality.measure(face), quality.measure(big)
    assert np.allclose(small[:3], large[:3], rtol=0.05)
    assert not quality.issues_of(quality.subscores(large[None], quality.QualityParams()))[0]


def test_an_interrupted_quality_run_resumes_without_recomputing_finished_chunks(tmp_path, unique_name, monkeypatch):
    images = {f"img{i}": _u8(np.random.default_rng(i).integers(0, 256, (48, 48))) for i in range(7)}
    ds, _ = ingest_images(tmp_path / "src", images, unique_name)
    table = SampleTable.load(ds)
    signal = quality.QualitySignal(quality.QualityParams(chunk_size=2))  # 4 chunks
    work = tmp_path / "work"
    real = quality.measure_files
    calls: list[str] = []

    def failing_third_chunk(paths, measure_px):
        calls.append(paths[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(paths, measure_px)
    monkeypatch.setattr(quality, "measure_files", failing_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        signal.compute_and_write(ds, table, work)
    assert sorted(p.name for p in (work / "measures").glob("*.npz")) == ["chunk00000.npz", "chunk00001.npz"]

    calls.clear()
    summary = signal.compute_and_write(ds, table, work)
    assert calls == [table.filepaths[4], table.filepaths[6]]  # only chunks 2 and 3
    assert summary["total"] == 7
    assert None not in ds.values(schema.QUALITY_SCORE)


def test_a_missing_file_is_a_one_line_error_naming_it(tmp_path, unique_name):
    ds, ids = ingest_images(tmp_path / "src", {"a": real_face(REAL_FACES[0])}, unique_name)
    path = Path(ds.first().filepath)
    path.unlink()
    with pytest.raises(FercurateError, match=path.name):
        run_signals(ds, ["quality"])
