"""Ingest into a real FiftyOne dataset on MongoDB: idempotent, change-aware, never fatal on bad images."""

import json
import shutil

import fiftyone as fo
import pytest

from fercurate import dataset, schema
from fercurate.errors import FercurateError
from fercurate.sources import read_source
from tests import factories


@pytest.fixture
def fer_root(tmp_path):
    return factories.fer2013_folder(tmp_path / "fer", per_class=2)


def test_ingest_creates_a_persistent_dataset_with_schema_fields(fer_root, unique_name):
    report = dataset.ingest(read_source(fer_root), unique_name)
    assert report.created and report.samples == 42 and not report.skipped
    ds = fo.load_dataset(unique_name)
    assert ds.persistent and schema.DATASET_TAG in ds.tags
    assert ds.default_classes == list(schema.EMOTIONS)
    sample = ds.match(fo.ViewField(schema.USAGE) == "PublicTest").first()
    assert sample[schema.SPLIT] == "val" and "val" in sample.tags
    assert sample[schema.GROUND_TRUTH].label in schema.EMOTIONS
    assert sample.metadata.width == 48 and sample.metadata.num_channels == 1
    assert len(sample[schema.FILE_HASH]) == 40
    assert dataset.counts(ds)["test"]["happy"] == 2
    assert unique_name in dataset.list_datasets()


def test_ingesting_the_same_source_twice_adds_nothing(fer_root, unique_name):
    dataset.ingest(read_source(fer_root), unique_name)
    ids = sorted(fo.load_dataset(unique_name).values("id"))
    report = dataset.ingest(read_source(fer_root), unique_name)
    assert not report.created and not report.diff
    assert sorted(fo.load_dataset(unique_name).values("id")) == ids


def test_changed_source_is_reported_and_applied_only_with_update(fer_root, unique_name):
    dataset.ingest(read_source(fer_root), unique_name)
    happy = sorted((fer_root / "train" / "happy").iterdir())
    shutil.move(happy[0], fer_root / "train" / "sad" / happy[0].name)  # relabel
    happy[1].unlink()  # remove
    factories.write_image(fer_root / "train" / "fear" / "Training_9999.jpg", 4242, "JPEG")  # add
    factories.write_image(fer_root / "test" / "angry" / sorted((fer_root / "test" / "angry").iterdir())[0].name,
                          777, "JPEG")  # rewrite in place

    report = dataset.ingest(read_source(fer_root), unique_name)
    # a moved file changes its key (its relative path): it reads as one removed + one added
    assert (len(report.diff.added), len(report.diff.removed), len(report.diff.rewritten)) == (2, 2, 1)
    assert not report.applied and len(fo.load_dataset(unique_name)) == 42

    report = dataset.ingest(read_source(fer_root), unique_name, update=True)
    ds = fo.load_dataset(unique_name)
    assert report.applied and len(ds) == 42
    keys = set(ds.values(schema.SOURCE_KEY))
    assert f"train/sad/{happy[0].name}" in keys and f"train/happy/{happy[1].name}" not in keys
    assert "train/fear/Training_9999.jpg" in keys
    assert not dataset.ingest(read_source(fer_root), unique_name).diff


def test_relabel_in_a_csv_is_detected_as_relabelled(tmp_path, unique_name):
    csv = factories.fer2013_csv(tmp_path / "fer2013.csv", rows=[(0, "Training"), (3, "PublicTest")])
    dataset.ingest(read_source(csv), unique_name)
    factories.fer2013_csv(csv, rows=[(0, "Training"), (5, "PublicTest")])
    report = dataset.ingest(read_source(csv), unique_name, update=True)
    # the csv's new content hash means a new PNG cache: same pixels at a new path
    assert report.diff.relabelled == ["row:1"] and not report.diff.rewritten and len(report.diff.moved) == 2
    labels = dict(zip(*fo.load_dataset(unique_name).values([schema.SOURCE_KEY, "ground_truth.label"])))
    assert labels == {"row:0": "angry", "row:1": "surprise"}


def test_corrupt_images_are_skipped_counted_and_reported(fer_root, unique_name):
    bad = fer_root / "train" / "happy" / "Training_5555.jpg"
    bad.write_bytes(sorted((fer_root / "train" / "sad").iterdir())[0].read_bytes()[:200])  # truncated JPEG
    (fer_root / "train" / "happy" / "Training_5556.jpg").write_bytes(b"")
    report = dataset.ingest(read_source(fer_root), unique_name)
    assert report.samples == 42 and len(report.skipped) == 2
    saved = json.loads(open(report.report_path).read())
    assert {s["path"].rsplit("/", 1)[1] for s in saved["skipped"]} == {"Training_5555.jpg", "Training_5556.jpg"}
    assert fo.load_dataset(unique_name).info[schema.INFO_INGEST_REPORT]["skipped"] == 2
    # unreadable files are not mistaken for removed ones on the next run
    assert not dataset.ingest(read_source(fer_root), unique_name).diff


def test_load_unknown_dataset_lists_existing(unique_name):
    with pytest.raises(FercurateError, match=f"no dataset named '{unique_name}'"):
        dataset.load(unique_name)


def test_moved_data_folder_updates_paths_without_update_flag(fer_root, tmp_path, unique_name):
    dataset.ingest(read_source(fer_root), unique_name)
    moved = shutil.move(fer_root, tmp_path / "elsewhere")
    report = dataset.ingest(read_source(moved), unique_name)
    assert not report.diff and len(report.diff.moved) == 42
    assert all(p.startswith(str(moved)) for p in fo.load_dataset(unique_name).values("filepath"))
