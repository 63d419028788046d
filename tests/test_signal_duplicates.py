"""duplicates: planted exact and near copies of real faces are grouped, one keeper each;
distinct real faces and near-constant frames are not linked."""

import io
import shutil
from collections import Counter
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from fercurate import dataset, schema
from fercurate.signals import computed, duplicates, run_signals
from fercurate.signals.base import ChunkStore
from fercurate.sources import read_source

SAMPLES = Path(duplicates.__file__).resolve().parent.parent / "sample_data" / "fer2013"
CLASSES = ("angry", "fear", "happy", "neutral", "sad", "surprise")
#: different people whose broad similarity is the highest in the sample data (0.81-0.86)
HARD_NEGATIVES = ("test/happy/PublicTest_98838334.jpg", "train/disgust/Training_8937293.jpg",
                  "train/disgust/Training_17174181.jpg", "train/disgust/Training_49380393.jpg")


def real_faces() -> list[Path]:
    """Distinct real faces: the first train images of six classes, test images of two, and
    the look-alikes of HARD_NEGATIVES."""
    faces = [p for c in CLASSES for p in sorted((SAMPLES / "train" / c).glob("Training_*.jpg"))[:3]]
    for c in ("happy", "neutral"):
        faces += sorted((SAMPLES / "test" / c).glob("PublicTest_*.jpg"))[:2]
        faces += sorted((SAMPLES / "test" / c).glob("PrivateTest_*.jpg"))[:2]
    return faces + [SAMPLES / h for h in HARD_NEGATIVES]


def gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def near_copy(pixels: np.ndarray, dx: int = 2, dy: int = -2, scale: float = 1.04, quality: int = 70) -> np.ndarray:
    """Shifted by (dx, dy) px, rescaled about the centre, re-encoded as JPEG."""
    h, w = pixels.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale)
    m[:, 2] += (dx, dy)
    moved = cv2.warpAffine(pixels, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    buf = io.BytesIO()
    Image.fromarray(moved).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("L"))


def save(root: Path, rel: str, pixels: np.ndarray) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)
    return rel


def rel(path: Path) -> str:
    return str(path.relative_to(SAMPLES))


def plant(root: Path) -> dict[str, list[str]]:
    """Copy the real faces into a FER2013 folder tree and plant the defects; returns
    role -> source keys (relative paths) of the planted groups' members."""
    faces = real_faces()
    base = []
    for p in faces:
        (root / rel(p)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / rel(p))
        base.append(rel(p))
    happy, angry, fear, neutral = (faces[CLASSES.index(c) * 3] for c in ("happy", "angry", "fear", "neutral"))
    big = cv2.resize(gray(fear), (96, 96), interpolation=cv2.INTER_CUBIC)
    black = np.zeros((48, 48), np.uint8)
    dot, brighter_dot = black.copy(), black.copy()  # near-constant (std < 1.2), not identical,
    dot[20:22, 20:22], brighter_dot[20:22, 20:22] = 12, 14  # identical once normalised
    planted = {
        # the same pixels in a lossless PNG (other bytes), in the test split, another label
        "exact_cross": [rel(happy), save(root, "test/sad/PrivateTest_90001.png", gray(happy))],
        "near": [rel(angry), save(root, "train/angry/Training_90002.jpg", near_copy(gray(angry)))],
        "upscaled": [rel(fear), save(root, "train/fear/Training_90003.png", big)],
        "majority": [rel(neutral), save(root, "train/neutral/Training_90004.png", gray(neutral)),
                     save(root, "train/surprise/Training_90005.png", gray(neutral))],
        "blank": [save(root, "train/sad/Training_90006.png", black),
                  save(root, "test/sad/PrivateTest_90007.png", black)],
        "near_constant": [save(root, "train/sad/Training_90008.png", dot),
                          save(root, "train/sad/Training_90009.png", brighter_dot)],
        "distinct": [b for b in base if b not in {rel(happy), rel(angry), rel(fear), rel(neutral)}],
    }
    return planted


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("dups") / "fer"
    planted = plant(root)
    name = "t-duplicates-planted"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset.ingest(read_source(root), name)
    ds = fo.load_dataset(name)
    assert run_signals(ds, ["duplicates"], log=lambda m: None) == ["duplicates"]
    ds.reload()
    rows = {k: dict(zip(["id", "group", "kind", "keeper", "dup", "score", "conflict", "cross", "label", "split"], v))
            for k, *v in zip(*ds.values([schema.SOURCE_KEY, "id", schema.DUP_GROUP, schema.DUP_KIND,
                                         schema.DUP_KEEPER, schema.IS_DUPLICATE, schema.DUP_SCORE,
                                         schema.DUP_LABEL_CONFLICT, schema.DUP_CROSS_SPLIT,
                                         f"{schema.GROUND_TRUTH}.label", schema.SPLIT]))}
    yield ds, planted, rows
    ds.delete()


def members(rows: dict, keys: list[str]) -> list[dict]:
    return [rows[k] for k in keys]


def test_pixel_identical_copy_is_an_exact_group_with_one_keeper(result):
    _, planted, rows = result
    a, b = members(rows, planted["exact_cross"])
    assert a["group"] is not None and a["group"] == b["group"]
    assert a["kind"] == b["kind"] == "exact"
    assert a["score"] == b["score"] == 0.0
    assert sorted([a["keeper"], b["keeper"]]) == [False, True]
    assert [a["dup"], b["dup"]] == [not a["keeper"], not b["keeper"]]


def test_cross_split_group_keeps_the_test_copy_and_flags_leakage_and_conflict(result):
    _, planted, rows = result
    train, test = members(rows, planted["exact_cross"])
    assert (train["split"], test["split"]) == (schema.TRAIN, schema.TEST)
    assert test["keeper"] and train["dup"]
    assert train["conflict"] and test["conflict"] and train["cross"] and test["cross"]


def test_shifted_rescaled_reencoded_copy_is_a_near_duplicate(result):
    _, planted, rows = result
    original, copy = members(rows, planted["near"])
    assert original["group"] is not None and original["group"] == copy["group"]
    assert original["kind"] == copy["kind"] == "near"
    assert 0.0 < copy["score"] <= 1.0 - duplicates.DuplicatesParams().near_threshold
    assert not copy["conflict"] and not copy["cross"]


def test_keeper_is_the_larger_image_within_one_split(result):
    _, planted, rows = result
    small, big = members(rows, planted["upscaled"])
    assert small["group"] == big["group"] is not None
    assert big["keeper"] and small["dup"]


def test_keeper_carries_the_majority_label(result):
    _, planted, rows = result
    group = members(rows, planted["majority"])
    assert len({m["group"] for m in group}) == 1 and group[0]["group"] is not None
    keeper = [m for m in group if m["keeper"]]
    assert len(keeper) == 1 and keeper[0]["label"] == "neutral"
    assert all(m["conflict"] for m in group) and not any(m["cross"] for m in group)


def test_blank_frames_are_grouped_as_exact_copies_only(result):
    _, planted, rows = result
    a, b = members(rows, planted["blank"])
    assert a["group"] == b["group"] is not None and a["kind"] == "exact"
    for m in members(rows, planted["near_constant"]):
        assert m["group"] is None and not m["dup"]


def test_distinct_real_faces_are_not_grouped(result):
    _, planted, rows = result
    distinct = members(rows, planted["distinct"])
    assert len(distinct) >= 20 and {rows[h]["id"] for h in HARD_NEGATIVES} <= {m["id"] for m in distinct}
    assert all(m["group"] is None and m["dup"] is False for m in distinct)
    assert min(m["score"] for m in distinct) > 1.0 - duplicates.DuplicatesParams().near_threshold


def test_summary_counts_groups_and_flags(result):
    ds, planted, rows = result
    s = computed(ds)["duplicates"]["summary"]
    groups = Counter(m["group"] for m in rows.values() if m["group"])
    assert s["total"] == len(rows) and s["groups"] == len(groups)
    assert s["flagged"] == sum(m["dup"] for m in rows.values())
    assert s["exact_groups"] + s["near_groups"] == s["groups"]
    assert s["cross_split_groups"]["train-test"] >= 2  # the happy copy and the blank frames
    assert 1 <= len(s["top"]) <= 10 and {"id", "filepath", "label", "score"} <= set(s["top"][0])
    assert s["top"][0]["group"] in groups


def test_many_real_faces_survive_shift_rescale_and_jpeg(tmp_path):
    """The near search on its own: every planted copy is linked to its original only."""
    faces = real_faces()[:12]
    originals = np.stack([gray(p) for p in faces])
    copies = np.stack([near_copy(g, dx=2 if i % 2 else -2, dy=2 - i % 5, scale=0.95 + 0.01 * (i % 10), quality=70)
                       for i, g in enumerate(originals)])
    canon = np.concatenate([originals, copies])
    p = duplicates.DuplicatesParams()
    pairs, sims = duplicates.near_similarity(canon, p, ChunkStore(tmp_path / "near"))
    linked = {tuple(x) for x in pairs[sims >= p.near_threshold].tolist()}
    assert linked == {(i, i + len(faces)) for i in range(len(faces))}


def test_chained_links_split_into_stars_around_the_keeper():
    """A~B and B~C but not A~C: A (test split) keeps B; C is left alone."""
    grouper = duplicates.Grouper(
        digest=np.array([0, 1, 2]), links={0: {1}, 1: {0, 2}, 2: {1}}, labels=["sad", "sad", "sad"],
        splits=[schema.TEST, schema.TRAIN, schema.TRAIN], area=np.full(3, 2304), nbytes=np.full(3, 1000),
        keys=["a", "b", "c"])
    groups = grouper.groups(duplicates.connected(3, np.array([[0, 1], [1, 2]])))
    assert [(g.members, g.keeper) for g in groups] == [([0, 1], 0)]
