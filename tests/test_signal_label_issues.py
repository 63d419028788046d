"""label_issues: planted label errors on learnable synthetic images are found, clean twins are not.

Three custom classes with distinct textures (horizontal stripes, vertical stripes, a
checkerboard) under heavy pixel noise; some images of each texture are filed under another
class. Beyond random flips, the realistic kinds of FER noise are planted too: a systematic
confusion (one class's images filed under one other class), ambiguous images (two
textures blended) and duplicate copies sharing a wrong label. A tiny CNN (24 px, 8
channels) trains in seconds, so these tests exercise the real cross-validation, cleanlab
and dataset writes.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
import torch
from PIL import Image

from fercurate import dataset, schema
from fercurate.errors import FercurateError
from fercurate.signals import classifier, computed, run_signals
from fercurate.signals.classifier import ClassifierParams
from fercurate.signals.crossval import cross_val_probs, fold_assignment
from fercurate.signals.label_issues import (
    LabelIssueParams, LabelIssues, classifier_features, folds_for, score_labels,
)
from fercurate.sources import read_source

CLASSES = ("calm", "dotted", "spiky")  # sorted, as the tree reader lists them
SIDE = 24
PER_CLASS = 70
FLIPS_PER_CLASS = 8
TINY = ClassifierParams(image_size=SIDE, width=8, convs=1, folds=3, repeats=1, epochs=3, min_steps=40, batch_size=32,
                        lr=1e-2, max_shift=2, bf16="off")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """A model this small trains fastest on one thread (and a busy machine hurts 2 threads most)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def texture(class_index: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy image whose texture identifies its class."""
    y, x = np.mgrid[:SIDE, :SIDE]
    phase = rng.integers(0, 6)
    base = [np.sin((y + phase) * np.pi / 3), np.sin((x + phase) * np.pi / 3),
            np.where(((x + phase) // 3 + (y + phase) // 3) % 2, 1.0, -1.0)][class_index]
    img = 128 + 70 * base + rng.normal(0, 45, (SIDE, SIDE))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_tree(root: Path, per_class: int = PER_CLASS, flips: int = FLIPS_PER_CLASS,
               extra: dict[str, int] | None = None) -> Path:
    """``<split>/<class>/*.png``; ``flip_*`` files show the texture of the *next* class.
    ``extra`` adds classes with that many (clean, checkerboard-like) images."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for i in range(per_class + flips):
            flipped = i >= per_class
            pixels = texture((c + 1) % 3 if flipped else c, rng)
            split = "test" if i % 5 == 0 else "train"
            path = root / split / name / f"{'flip' if flipped else 'clean'}_{c}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    for name, n in (extra or {}).items():
        for i in range(n):
            path = root / "train" / name / f"clean_x_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(texture(2, rng)).save(path)
    return root


def _use_tiny(mp: pytest.MonkeyPatch) -> None:
    """The signal, run by the real runner, with the tiny classifier."""
    mp.setattr(LabelIssues, "default_params", lambda self: LabelIssueParams(classifier=TINY))


@pytest.fixture
def tiny(monkeypatch):
    _use_tiny(monkeypatch)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> fo.Dataset:
    """One trained run shared by the read-only tests below."""
    with pytest.MonkeyPatch.context() as mp:
        _use_tiny(mp)
        dataset.ingest(read_source(write_tree(tmp_path_factory.mktemp("planted"))), "t-label-issues-planted")
        ds = fo.load_dataset("t-label-issues-planted")
        assert run_signals(ds, ["label_issues"], log=lambda m: None) == ["duplicates", "label_issues"]
    return ds


def _columns(ds: fo.Dataset) -> dict[str, np.ndarray]:
    paths, quality, flags = ds.values(["filepath", schema.LABEL_QUALITY, schema.IS_LABEL_ISSUE])
    return {"flipped": np.array([Path(p).name.startswith("flip") for p in paths]),
            "quality": np.array(quality), "flag": np.array(flags)}


def test_flipped_labels_score_low_and_are_flagged_clean_twins_are_not(planted):
    col = _columns(planted)
    flipped, quality, flag = col["flipped"], col["quality"], col["flag"]
    assert flipped.sum() == 3 * FLIPS_PER_CLASS
    assert ((quality >= 0) & (quality <= 1)).all()
    # the posterior that the label is right: flipped labels far below clean ones
    # (the tempered evidence keeps a random flip's posterior off 0: the ranking is what counts)
    assert quality[flipped].mean() < 0.8 and quality[~flipped].mean() > 0.95
    assert np.median(quality[flipped]) < np.percentile(quality[~flipped], 5)
    assert flag[flipped].mean() >= 0.75
    assert flag[~flipped].mean() <= 0.1
    # the worst-ranked samples are the flipped ones
    worst = np.argsort(quality)[:len(quality) // 20]
    assert flipped[worst].all()


def test_custom_classes_suggested_label_is_the_texture_and_probs_follow_class_order(planted):
    ds = planted
    assert ds.info[schema.INFO_CLASSES] == list(CLASSES)
    paths, probs, suggested, given = ds.values(["filepath", schema.OOF_PROBS, schema.SUGGESTED_LABEL,
                                               f"{schema.GROUND_TRUTH}.label"])
    probs = np.array(probs)
    assert probs.shape == (len(ds), 3) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [s.label for s in suggested] == [CLASSES[i] for i in probs.argmax(1)]
    assert all(abs(s.confidence - p.max()) < 1e-4 for s, p in zip(suggested, probs))
    texture_of = {Path(p).name: CLASSES[(CLASSES.index(g) + Path(p).name.startswith("flip")) % 3]
                  for p, g in zip(paths, given)}
    hits = [s.label == texture_of[Path(p).name] for p, s in zip(paths, suggested)]
    assert np.mean(hits) > 0.9
    test_split = ds.match(fo.ViewField(schema.SPLIT) == schema.TEST)
    assert test_split.count(schema.LABEL_QUALITY) == len(test_split) > 0  # every split is scored
    # the soft label a version carries: for a flipped label it leans to the image's texture
    flipped = np.array([Path(p).name.startswith("flip") for p in paths])
    texture_idx = np.array([CLASSES.index(texture_of[Path(p).name]) for p in paths])
    assert np.mean(probs[flipped].argmax(1) == texture_idx[flipped]) > 0.7


def test_summary_counts_and_classifier_features(planted):
    ds = planted
    summary = computed(ds)["label_issues"]["summary"]
    col = _columns(ds)
    assert summary["total"] == len(ds) and summary["flagged"] == int(col["flag"].sum())
    assert sum(summary["flagged_per_class"].values()) == summary["flagged"]
    assert [t["score"] for t in summary["top"]] == sorted(t["score"] for t in summary["top"])
    assert all(Path(t["filepath"]).name.startswith("flip") for t in summary["top"][:5])
    ids, features = classifier_features(ds)
    assert sorted(ids) == sorted(ds.values("id"))
    assert features.shape == (len(ds), 8 * TINY.width) and np.isfinite(features).all()
    assert "per class" in summary["warning"]  # ~80 images per class: flags are only hints


def test_the_estimated_noise_names_each_planted_confusion_and_the_report_prints_it(planted, capsys):
    """Each class's flips show the next class's texture: its wrong labels are mostly that class."""
    from fercurate import cli
    noise = computed(planted)["label_issues"]["summary"]["estimated_label_noise"]
    assert set(noise) == set(CLASSES)
    for c, name in enumerate(CLASSES):
        assert 0.6 < noise[name]["right"] < 1.0
        assert next(iter(noise[name]["else"])) == CLASSES[(c + 1) % 3]
    assert cli.main(["report", planted.name]) == 0
    out = capsys.readouterr().out.splitlines()
    line = next(ln for ln in out if "labels estimated right" in ln)
    assert all(name in line for name in CLASSES)
    # each example names its sample id, which decide/set-label take
    worst = computed(planted)["label_issues"]["summary"]["top"][0]
    assert any(worst["id"] in ln and worst["filepath"] in ln for ln in out)


def test_no_weak_classifier_warning_with_enough_images_per_class():
    from fercurate.signals.base import SampleTable
    from fercurate.signals.label_issues import RELIABLE_PER_CLASS, summarize
    n = RELIABLE_PER_CLASS * 3
    labels = np.repeat(np.arange(3), RELIABLE_PER_CLASS)
    probs = np.eye(3)[labels] * 0.8 + 0.2 / 3
    table = SampleTable([str(i) for i in range(n)], ["x"] * n, [CLASSES[k] for k in labels], ["train"] * n,
                        ["h"] * n, list(CLASSES))
    summary = summarize(table, labels, probs, probs[np.arange(n), labels], np.zeros(n, bool), 3)
    assert "warning" not in summary and summary["oof_accuracy"] == 1.0
    k = slice(None, None, 3)  # a third of each class
    third = SampleTable(table.ids[k], table.filepaths[k], table.labels[k], table.splits[k], table.file_hashes[k],
                        table.classes)
    few = summarize(third, labels[k], probs[k], probs[np.arange(n), labels][k], np.zeros(n // 3, bool), 3)
    assert "warning" in few


def test_classifier_features_before_a_run_is_a_one_line_error(tmp_path, unique_name):
    dataset.ingest(read_source(write_tree(tmp_path / "src", per_class=3, flips=0)), unique_name)
    with pytest.raises(FercurateError, match="run 'fercurate compute label_issues'"):
        classifier_features(fo.load_dataset(unique_name))


def test_killed_after_fold_one_resumes_without_retraining_it(tmp_path, unique_name, tiny, monkeypatch):
    dataset.ingest(read_source(write_tree(tmp_path / "src", per_class=30, flips=3)), unique_name)
    ds = fo.load_dataset(unique_name)
    real_train = classifier.train_model
    trained: list[str] = []

    def train_then_die(*args, **kwargs):
        if len(trained) == 1:
            raise KeyboardInterrupt  # the kill, during fold 2
        trained.append(kwargs["desc"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(classifier, "train_model", train_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_signals(ds, ["label_issues"], log=lambda m: None)
    assert trained == ["fold 1/3"] and schema.LABEL_QUALITY not in ds.get_field_schema()
    assert computed(ds).get("duplicates")  # the folds' duplicate groups were computed first

    trained.clear()
    monkeypatch.setattr(classifier, "train_model", lambda *a, **k: trained.append(k["desc"]) or real_train(*a, **k))
    assert run_signals(ds, ["label_issues"], log=lambda m: None) == ["label_issues"]
    assert trained == ["fold 2/3", "fold 3/3"]
    ds.reload()
    assert len(ds.exists(schema.LABEL_QUALITY)) == len(ds.exists(schema.OOF_PROBS)) == len(ds)


def test_cross_validation_is_deterministic():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    images = np.stack([texture(c, rng) for c in labels])
    a = cross_val_probs(images, labels, 3, TINY)
    b = cross_val_probs(images, labels, 3, TINY)
    assert np.array_equal(a.fold, b.fold) and np.array_equal(a.pred_probs, b.pred_probs)
    assert np.array_equal(a.features, b.features)


def test_folds_trained_in_worker_processes_equal_the_serial_run(tmp_path, monkeypatch):
    """Two spawned one-thread workers give the same models as one process (each fold is
    seeded by itself), and a store that already holds a fold is resumed, not retrained."""
    from fercurate.signals import crossval
    from fercurate.signals.base import ChunkStore
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    images = np.stack([texture(c, rng) for c in labels])
    twice = ClassifierParams(**{**TINY.__dict__, "repeats": 2})
    serial = cross_val_probs(images, labels, 3, twice)
    monkeypatch.setattr(crossval, "MIN_PARALLEL_IMAGES", 0)
    store = ChunkStore(tmp_path / "folds")
    store.save("fold1", crossval.run_fold(images, labels, serial.fold[0], crossval.fold_tasks(3, 2, TINY.seed)[1],
                                          3, twice))
    parallel = cross_val_probs(images, labels, 3, twice, store=store, workers=2)
    assert np.allclose(serial.pred_probs, parallel.pred_probs, atol=1e-6)
    assert np.allclose(serial.features, parallel.features, atol=1e-5)
    assert sorted(p.stem for p in (tmp_path / "folds").glob("*.npz")) == \
        ["fold0", "fold1", "fold2", "repeat1-fold0", "repeat1-fold1", "repeat1-fold2"]


def test_a_class_with_one_sample_is_a_one_line_error(tmp_path, unique_name, tiny):
    dataset.ingest(read_source(write_tree(tmp_path / "src", per_class=10, flips=0, extra={"lonely": 1})),
                   unique_name)
    with pytest.raises(FercurateError, match="'lonely' has 1 sample") as err:
        run_signals(fo.load_dataset(unique_name), ["label_issues"], log=lambda m: None)
    assert "\n" not in str(err.value)


def test_folds_shrink_to_the_smallest_class():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 10)
    assert folds_for(labels, ["a", "b", "c"], 5) == 3
    assert folds_for(labels, ["a", "b", "c"], 2) == 2


def test_a_class_without_samples_does_not_disturb_cleanlab():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    probs = np.full((90, 4), 0.02) + rng.uniform(0, 1e-3, (90, 4))
    probs[np.arange(90), labels] = 0.9
    probs[:3, 0], probs[:3, 1] = 0.02, 0.95         # three samples labelled 0 look like class 1
    probs = probs / probs.sum(1, keepdims=True)
    quality, is_issue, _ = score_labels(labels, probs)  # column 3 is a class nobody carries
    assert set(np.flatnonzero(is_issue)) == {0, 1, 2}
    assert quality[:3].max() < quality[3:].min()


# --- duplicate-aware folds ----------------------------------------------------------------

def test_a_duplicate_group_never_spans_folds_in_any_repeat():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    groups = np.arange(300)
    groups[1::7] = groups[0::7][:len(groups[1::7])]  # every 7th image has a copy next to it
    groups[200:210] = 200                             # one big group of 10
    for seed in (0, 1000, 2000):
        fold = fold_assignment(labels, 3, seed, groups)
        for g in np.unique(groups):
            assert len(set(fold[groups == g])) == 1
        assert len(np.bincount(fold)) == 3 and np.bincount(fold).min() > 60  # every fold used, balanced
    # without groups a pair is split about two times in three
    split = [len(set(fold_assignment(labels, 3, s)[[0, 1]])) > 1 for s in range(30)]
    assert 0.4 < np.mean(split) < 0.9


def test_repeats_average_held_out_predictions_of_independent_partitions():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    images = np.stack([texture(c, rng) for c in labels])
    twice = ClassifierParams(**{**TINY.__dict__, "repeats": 2})
    cv = cross_val_probs(images, labels, 3, twice)
    assert cv.fold.shape == (2, 60) and not np.array_equal(cv.fold[0], cv.fold[1])
    assert np.allclose(cv.pred_probs.sum(1), 1, atol=1e-4)


def _copy_tree(root: Path) -> tuple[Path, list[str]]:
    """The textures, plus 6 'calm' images saved twice with the same wrong label 'spiky'
    (a re-saved duplicate: the copy in a training fold would vouch for the wrong label)."""
    write_tree(root, per_class=40, flips=0)
    rng = np.random.default_rng(7)
    names = []
    for i in range(6):
        pixels = texture(0, rng)
        for copy in ("a", "b"):
            path = root / "train" / "spiky" / f"copy_{i}{copy}.png"
            Image.fromarray(pixels).save(path)
            names.append(path.name)
    return root, names


def test_the_signal_keeps_duplicate_copies_in_one_fold(tmp_path, unique_name, tiny, monkeypatch):
    from fercurate.signals import crossval
    root, names = _copy_tree(tmp_path / "src")
    dataset.ingest(read_source(root), unique_name)
    ds = fo.load_dataset(unique_name)
    seen = {}
    real = crossval.fold_assignment

    def spy(labels, folds, seed, groups=None):
        seen["groups"] = groups
        return real(labels, folds, seed, groups)
    monkeypatch.setattr(crossval, "fold_assignment", spy)
    run_signals(ds, ["label_issues"], log=lambda m: None)
    paths = [Path(p).name for p in ds.values("filepath")]
    groups = seen["groups"]
    for i in range(6):
        a, b = paths.index(f"copy_{i}a.png"), paths.index(f"copy_{i}b.png")
        assert groups[a] == groups[b]
    ds.reload()
    dup = ds.values(schema.DUP_GROUP)  # the folds' groups are exactly the duplicates signal's
    for i in range(len(ds)):
        for j in range(i + 1, len(ds)):
            assert (groups[i] == groups[j]) == (dup[i] is not None and dup[i] == dup[j])
    quality = dict(zip(paths, ds.values(schema.LABEL_QUALITY)))
    clean = [q for n, q in quality.items() if n.startswith("clean")]
    assert np.median([quality[n] for n in names]) < np.percentile(clean, 10)  # the copies are caught


# --- realistic noise: systematic confusion and ambiguous faces ------------------------------

def _realistic_tree(root: Path) -> Path:
    """Clean textures, plus: 18 'dotted' (vertical stripes) images filed under 'spiky' (a
    systematic one-way confusion, like fear filed as surprise), and 16 ambiguous images
    (horizontal and vertical stripes blended half and half) filed as either."""
    write_tree(root, per_class=70, flips=0)
    rng = np.random.default_rng(11)
    for i in range(18):
        Image.fromarray(texture(1, rng)).save(root / "train" / "spiky" / f"confused_{i}.png")
    for i in range(16):
        a, b = texture(0, rng).astype(float), texture(1, rng).astype(float)
        blend = ((a + b) / 2).astype(np.uint8)
        Image.fromarray(blend).save(root / "train" / ("calm" if i % 2 else "dotted") / f"blend_{i}.png")
    return root


def test_confused_labels_are_relabelled_to_the_right_class_and_ambiguous_ones_are_never_relabelled(
        tmp_path, unique_name, tiny):
    from fercurate import fixes
    dataset.ingest(read_source(_realistic_tree(tmp_path / "src")), unique_name)
    ds = fo.load_dataset(unique_name)
    run_signals(ds, ["label_issues"], log=lambda m: None)
    fixes.propose(ds)
    ds.reload()
    names = [Path(p).name for p in ds.values("filepath")]
    relabel = ds.values(schema.fix_field(schema.RELABEL))
    ambiguous = ds.values(schema.fix_field(schema.DROP_AMBIGUOUS))
    confused = [i for i, n in enumerate(names) if n.startswith("confused")]
    blends = [i for i, n in enumerate(names) if n.startswith("blend")]
    clean = [i for i, n in enumerate(names) if n.startswith("clean")]
    # the systematic confusion is found, and where a relabel is proposed it names the texture
    found = [i for i in confused if relabel[i] is not None or ambiguous[i] is not None]
    assert len(found) >= 0.6 * len(confused)
    targets = [relabel[i][schema.FIX_TARGET] for i in confused if relabel[i] is not None]
    assert targets and all(t == "dotted" for t in targets)
    # an ambiguous image is never confidently relabelled; flagged, it becomes drop_ambiguous
    assert sum(relabel[i] is not None for i in blends) <= 1
    # clean images are left alone
    assert np.mean([relabel[i] is not None or ambiguous[i] is not None for i in clean]) <= 0.1


# --- a second round that does not learn the labels the first flagged -----------------------

def test_samples_left_out_of_training_are_still_scored_but_teach_nothing():
    """``trainable`` keeps labels out of training, not images out of scoring: with every
    'spiky' label left out, no model learns that class, yet every image gets probabilities."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    images = np.stack([texture(c, rng) for c in labels])
    full = cross_val_probs(images, labels, 3, TINY)
    without = cross_val_probs(images, labels, 3, TINY, trainable=labels != 2)
    assert without.pred_probs.shape == (60, 3) and np.allclose(without.pred_probs.sum(1), 1, atol=1e-4)
    assert full.pred_probs[labels == 2, 2].mean() > 0.6
    assert without.pred_probs[labels == 2, 2].mean() < 0.2
    assert (without.pred_probs.argmax(1) != 2).all()


def test_round_two_trains_without_round_one_flags_and_a_kill_in_it_resumes(tmp_path, unique_name, monkeypatch):
    """rounds=2: the second cross-validation trains on the labels round 1 did not flag (the
    flipped ones it found), every image is scored again; killed during round 2, a re-run
    trains only round 2's missing folds."""
    from fercurate.signals import crossval
    monkeypatch.setattr(LabelIssues, "default_params", lambda self: LabelIssueParams(classifier=TINY, rounds=2))
    dataset.ingest(read_source(write_tree(tmp_path / "src")), unique_name)
    ds = fo.load_dataset(unique_name)
    seen: list = []
    real = crossval.run_fold
    kill_at = [TINY.folds + 1]

    def spy(images, labels, fold, task, num_classes, params, trainable=None):
        if len(seen) == kill_at[0]:
            raise KeyboardInterrupt  # the kill, during round 2's second fold
        seen.append(None if trainable is None else trainable.copy())
        return real(images, labels, fold, task, num_classes, params, trainable)

    monkeypatch.setattr(crossval, "run_fold", spy)
    with pytest.raises(KeyboardInterrupt):
        run_signals(ds, ["label_issues"], log=lambda m: None)
    assert len(seen) == TINY.folds + 1 and all(t is None for t in seen[:TINY.folds])
    left_out = ~seen[TINY.folds]
    flipped = np.array([Path(p).name.startswith("flip") for p in ds.values("filepath")])
    assert left_out.sum() >= 0.5 * flipped.sum() and flipped[left_out].mean() > 0.8  # the flipped labels

    seen.clear()
    kill_at[0] = -1
    assert run_signals(ds, ["label_issues"], log=lambda m: None) == ["label_issues"]
    assert len(seen) == TINY.folds - 1 and all(t is not None and np.array_equal(t, ~left_out) for t in seen)
    assert len(computed(ds)["label_issues"]["summary"]["flagged_by_round"]) == 2
    cols = _columns(ds)
    assert cols["quality"][cols["flipped"]].mean() < cols["quality"][~cols["flipped"]].mean()
    assert cols["flag"][cols["flipped"]].mean() > 0.6 and cols["flag"][~cols["flipped"]].mean() < 0.15
