"""usability: placeholders, icons, blanks and tiny faces are flagged with their reasons;
real faces (dark ones too) and photographs MediaPipe finds no face in are not."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from fercurate import fixes, schema
from fercurate.signals import run_signals, usability_rules
from fercurate.signals.usability_rules import UsabilityParams, flat_share, usability
from tests.factories import ingest_images, set_fields
from tests.test_signal_faces import REAL_FACES, no_entry_icon, real_face, text_image

P = UsabilityParams()


def warning_icon() -> np.ndarray:
    """FER2013's white warning triangle on black."""
    im = Image.new("L", (48, 48), 0)
    draw = ImageDraw.Draw(im)
    draw.polygon([(24, 6), (44, 42), (4, 42)], outline=255, width=3)
    draw.rectangle((22, 16, 26, 32), fill=255)
    draw.rectangle((22, 35, 26, 38), fill=255)
    return np.asarray(im)


def mouth_crop() -> np.ndarray:
    """The lower half of a real face enlarged: a photograph in which no model finds a face."""
    return np.asarray(Image.fromarray(real_face(REAL_FACES[0])[28:48, 8:40]).resize((48, 48), Image.BICUBIC))


def faceless_photo(seed: int = 0) -> np.ndarray:
    """Smooth photographic texture (shading and noise everywhere), no face in it."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray((rng.random((48, 48)) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    x = np.asarray(im).astype(float)
    return np.clip((x - x.mean()) * 5 + 120 + rng.normal(0, 4, x.shape), 0, 255).astype(np.uint8)


def test_flat_share_separates_placeholders_from_photographs():
    faces = [real_face(s) for s in REAL_FACES] + [(real_face(REAL_FACES[0]) * 0.3).astype(np.uint8)]
    graphics = [text_image(), no_entry_icon(), warning_icon(), np.zeros((48, 48), np.uint8)]
    assert min(flat_share(g) for g in graphics) > 0.5
    assert max(flat_share(faceless_photo()), flat_share(mouth_crop())) < P.no_face_graphic_min_flat
    # a face on a plain studio background is flatter than a faceless photograph, which is
    # why a detected face needs a far higher flat share to count as a graphic
    assert max(flat_share(g) for g in faces) > P.no_face_graphic_min_flat
    assert max(flat_share(g) for g in faces) < P.face_graphic_min_flat - 0.2
    # measured at 48 px whatever the size: a 4x upscaled face stays a photograph
    big = np.asarray(Image.fromarray(real_face(REAL_FACES[0])).resize((192, 192), Image.BICUBIC))
    assert abs(flat_share(big) - flat_share(real_face(REAL_FACES[0]))) < 0.05


def test_rules_flag_exactly_below_one_half_and_say_why():
    flat = np.array([0.05, 0.30, 0.30, 0.70, 0.05, 0.05, 0.05])
    no_face = np.array([True, True, False, False, False, False, False])
    face_px = np.array([np.nan, np.nan, 40.0, 40.0, 10.0, 18.0, np.nan])
    score, reasons = usability(flat, no_face, face_px, P)
    assert reasons == [[], ["no_face", "graphic"], [], ["graphic"], ["tiny_face"], [], []]
    assert ((score < usability_rules.FLAG_BELOW) == np.array([bool(r) for r in reasons])).all()
    # no face alone ranks below an ordinary face but is not flagged
    assert 0.5 <= score[0] <= usability_rules.NO_FACE_CAP < score[2]
    assert score[5] == pytest.approx(0.5)  # at the threshold: not flagged
    # lower score = stronger case, monotone in flatness and in face size
    s_flat, _ = usability(np.linspace(0.2, 0.6, 5), np.ones(5, bool), np.full(5, np.nan), P)
    assert (np.diff(s_flat) < 0).all() and s_flat[-1] == pytest.approx(0.0)
    s_px, _ = usability(np.zeros(4), np.zeros(4, bool), np.array([6.0, 12.0, 17.0, 30.0]), P)
    assert (np.diff(s_px) > 0).all()


def test_face_side_is_measured_in_pixels_of_the_image():
    assert usability_rules.face_side_px([0.1, 0.1, 0.25, 0.25], 48, 48) == pytest.approx(12.0)
    # a KDEF-sized portrait: the same relative box is a large face
    assert usability_rules.face_side_px([0.1, 0.1, 0.25, 0.25], 562, 762) > 100
    assert np.isnan(usability_rules.face_side_px(None, 48, 48))


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Real faces, a dark face, a face cropped to its mouth and placeholders, through real MediaPipe."""
    images = {f"real{i}": real_face(s) for i, s in enumerate(REAL_FACES)}
    images.update({"dark": (real_face(REAL_FACES[0]) * 0.3).astype(np.uint8), "photo": mouth_crop(),
                   "text": text_image(), "icon": no_entry_icon(), "warning": warning_icon(),
                   "blank": np.zeros((48, 48), np.uint8)})
    ds, ids = ingest_images(tmp_path_factory.mktemp("usability") / "src", images, "t-usability")
    assert run_signals(ds, ["usability"]) == ["faces", "usability"]
    ds.reload()
    yield ds, ids
    ds.delete()


@pytest.mark.parametrize("stem", ["text", "icon", "warning", "blank"])
def test_placeholders_are_unusable_for_no_face_and_graphic(scored, stem):
    ds, ids = scored
    s = ds[ids[stem]]
    assert s[schema.IS_UNUSABLE] and s[schema.USABILITY] < 0.5
    assert s[schema.USABILITY_REASONS] == ["no_face", "graphic"]


@pytest.mark.parametrize("stem", ["real0", "real1", "real2", "dark"])
def test_real_faces_are_usable(scored, stem):
    ds, ids = scored
    s = ds[ids[stem]]
    assert not s[schema.IS_UNUSABLE] and s[schema.USABILITY] > 0.9 and s[schema.USABILITY_REASONS] == []


def test_a_photograph_without_a_detected_face_is_ranked_low_but_not_flagged(scored):
    ds, ids = scored
    s = ds[ids["photo"]]
    assert s[schema.IS_NON_FACE]  # MediaPipe finds nothing ...
    assert not s[schema.IS_UNUSABLE] and 0.5 <= s[schema.USABILITY] <= usability_rules.NO_FACE_CAP


def test_a_tiny_detected_face_is_flagged_and_proposed_with_its_reason(scored, tmp_path):
    """A detector box of 12 x 12 px on a real face (MediaPipe's own boxes at that scale are
    not reproducible on synthetic scenes), then the signal re-runs on the changed input."""
    ds, ids = scored
    box = ds[ids["real1"]][schema.FACE_DETECTION]
    box.bounding_box = [0.3, 0.2, 0.25, 0.25]
    set_fields(ds, {schema.FACE_DETECTION: {ids["real1"]: box}})
    from fercurate.signals.usability import UsabilitySignal
    from fercurate.signals.base import SampleTable
    UsabilitySignal().compute_and_write(ds, SampleTable.load(ds), tmp_path)
    ds.reload()
    s = ds[ids["real1"]]
    assert s[schema.USABILITY_REASONS] == ["tiny_face"] and s[schema.IS_UNUSABLE]

    fixes.propose(ds)
    ds.reload()
    proposed = {i: ds[i][fixes.FIX_FIELDS[schema.DROP_NONFACE]] for i in ids.values()}
    flagged = {stem for stem, i in ids.items() if proposed[i] is not None}
    assert flagged == {"text", "icon", "warning", "blank", "real1"}
    fix = proposed[ids["real1"]]
    assert fix["reasons"] == ["tiny_face"] and fix[schema.FIX_PROPOSED_BY] == "usability"
    assert fix[schema.FIX_SCORE] == pytest.approx(s[schema.USABILITY], abs=1e-4)
