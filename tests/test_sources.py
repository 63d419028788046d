"""Each reader on small generated fixtures, including every bad input it must refuse."""

import os

import pytest

from fercurate import schema
from fercurate.errors import SourceError
from fercurate.sources import detect_layout, read_source
from tests import factories


def test_fer2013_folder_maps_usage_prefixes_to_splits(tmp_path):
    root = factories.fer2013_folder(tmp_path / "fer", per_class=2)
    scan = read_source(root)
    assert scan.layout == "fer2013_folder"
    assert scan.classes == schema.EMOTIONS
    counts = scan.counts()
    assert set(counts) == {"train", "val", "test"}
    assert all(counts[s][c] == 2 for s in counts for c in schema.EMOTIONS)
    by_name = {os.path.basename(r.filepath): r for r in scan.records}
    assert all(r.split == "val" and r.meta[schema.USAGE] == "PublicTest"
               for n, r in by_name.items() if n.startswith("PublicTest_"))
    assert all(r.split == "test" for n, r in by_name.items() if n.startswith("PrivateTest_"))
    assert len({r.key for r in scan.records}) == len(scan.records)


def test_fer2013_folder_without_usage_prefix_takes_top_folder_split(tmp_path):
    factories.write_image(tmp_path / "train" / "happy" / "a.jpg", 1)
    factories.write_image(tmp_path / "test" / "sad" / "b.png", 2)
    scan = read_source(tmp_path, "fer2013_folder")
    assert {(r.label, r.split) for r in scan.records} == {("happy", "train"), ("sad", "test")}


def test_unknown_class_folder_is_refused_naming_the_folder(tmp_path):
    root = factories.fer2013_folder(tmp_path / "fer", per_class=1)
    factories.write_image(root / "train" / "contempt" / "Training_1.jpg", 1)
    with pytest.raises(SourceError, match=r"contempt.*unknown class folder.*--layout tree"):
        read_source(root, "fer2013_folder")


def test_non_image_files_are_skipped_and_listed(tmp_path):
    root = factories.fer2013_folder(tmp_path / "fer", per_class=1)
    (root / "train" / "happy" / "notes.txt").write_text("hi")
    (root / "train" / "happy" / ".DS_Store").write_text("")
    scan = read_source(root)
    assert [os.path.basename(s.path) for s in scan.skipped] == ["notes.txt"]
    assert len(scan.records) == 21


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_missing_or_empty_sources_are_refused(tmp_path, make):
    path = tmp_path / "src"
    if make == "file":
        path.write_text("x")
    elif make == "empty":
        (path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(SourceError, match=str(path)):
        read_source(path, "fer2013_folder")


def test_csv_rows_become_cached_pngs_reused_on_rerun(tmp_path):
    csv = factories.fer2013_csv(tmp_path / "fer2013.csv")
    scan = read_source(csv)
    assert scan.layout == "fer2013_csv"
    assert len(scan.records) == 21
    first = scan.records[0]
    assert first.label == "angry" and first.split == "train" and first.meta[schema.CSV_ROW] == 0
    sad = [r for r in scan.records if r.meta[schema.CSV_ROW] == 3 * 4][0]  # emotion 4 = sad
    assert sad.label == "sad"
    mtimes = {r.filepath: os.path.getmtime(r.filepath) for r in scan.records}
    again = read_source(tmp_path)  # the folder holding fer2013.csv works too
    assert [r.filepath for r in again.records] == [r.filepath for r in scan.records]
    assert {r.filepath: os.path.getmtime(r.filepath) for r in again.records} == mtimes


def test_csv_pngs_hold_the_row_pixels(tmp_path):
    from PIL import Image
    import numpy as np
    scan = read_source(factories.fer2013_csv(tmp_path / "fer2013.csv", rows=[(3, "Training")]))
    assert np.array_equal(np.asarray(Image.open(scan.records[0].filepath)), factories.face_like(0))


def test_csv_interrupted_write_resumes(tmp_path):
    csv = factories.fer2013_csv(tmp_path / "fer2013.csv")
    scan = read_source(csv)
    out_dir = os.path.dirname(os.path.dirname(scan.records[0].filepath))
    os.remove(os.path.join(out_dir, ".complete"))
    os.remove(scan.records[5].filepath)  # as if killed before this row was written
    again = read_source(csv)
    assert os.path.isfile(again.records[5].filepath)


@pytest.mark.parametrize("kwargs, message", [
    ({"header": "label,pixels,Usage"}, r"header is 'label,pixels,Usage'.*emotion,pixels,Usage"),
    ({"npix": 2303}, r"line 2: 2303 pixels, expected 2304"),
    ({"rows": [(7, "Training")]}, r"line 2: emotion 7 is outside 0-6"),
    ({"rows": [(1, "Training"), (-1, "Training")]}, r"line 3: emotion -1 is outside 0-6"),
    ({"rows": [(1, "Train")]}, r"line 2: Usage 'Train'"),
])
def test_bad_csv_is_refused_naming_file_and_line(tmp_path, kwargs, message):
    csv = factories.fer2013_csv(tmp_path / "fer2013.csv", **kwargs)
    with pytest.raises(SourceError, match=message) as e:
        read_source(csv, "fer2013_csv")
    assert str(csv) in str(e.value)


def test_csv_with_only_a_header_is_empty(tmp_path):
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,pixels,Usage\n")
    with pytest.raises(SourceError, match="no images found"):
        read_source(csv)


def test_kdef_keeps_actor_and_angle_and_splits_by_actor(tmp_path):
    root = factories.kdef(tmp_path / "KDEF")
    scan = read_source(root)
    assert scan.layout == "kdef"
    assert len(scan.records) == 12
    r = [r for r in scan.records if r.filepath.endswith("AM26HAHL.JPG")][0]
    assert r.label == "happy" and r.split == "val"
    assert r.meta == {schema.KDEF_SESSION: "A", schema.KDEF_SEX: "M", schema.KDEF_ACTOR: "M26", schema.KDEF_ANGLE: "HL"}
    assert {r.label for r in scan.records} == {"fear", "happy"}
    assert {r.meta[schema.KDEF_ACTOR]: r.split for r in scan.records} == {"F01": "train", "M26": "val", "F31": "test"}


def test_kdef_misnamed_file_is_skipped_and_nested_folder_accepted(tmp_path):
    root = factories.kdef(tmp_path / "KDEF_and_AKDEF" / "KDEF")
    factories.write_image(root / "AF01" / "AF01XXS.JPG", 99)
    scan = read_source(tmp_path / "KDEF_and_AKDEF", "kdef")
    assert len(scan.records) == 12
    assert [os.path.basename(s.path) for s in scan.skipped] == ["AF01XXS.JPG"]


def test_tree_with_splits_and_custom_classes(tmp_path):
    for split in ("train", "validation", "test"):
        for label in ("cat", "dog"):
            factories.write_image(tmp_path / split / label / "1.png", 1)
    scan = read_source(tmp_path)
    assert scan.layout == "tree"  # not FER2013: no emotion folders
    assert scan.classes == ("cat", "dog")
    assert {(r.split, r.label) for r in scan.records} == {
        (s, c) for s in ("train", "val", "test") for c in ("cat", "dog")}


def test_tree_without_splits_gets_a_stable_split(tmp_path):
    for i in range(60):
        factories.write_image(tmp_path / ("joy" if i % 2 else "calm") / f"{i}.png", i)
    first = {r.key: r.split for r in read_source(tmp_path, "tree").records}
    factories.write_image(tmp_path / "joy" / "new.png", 999)
    second = {r.key: r.split for r in read_source(tmp_path, "tree").records}
    assert {k: second[k] for k in first} == first
    assert set(first.values()) <= {"train", "val", "test"} and "train" in first.values()


def test_tree_mixing_split_and_class_folders_is_refused(tmp_path):
    factories.write_image(tmp_path / "train" / "cat" / "1.png", 1)
    factories.write_image(tmp_path / "dog" / "2.png", 2)
    with pytest.raises(SourceError, match="mixes split folders"):
        read_source(tmp_path, "tree")


def test_detect_layout_names_the_path_when_nothing_matches(tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(SourceError, match="not a recognised layout"):
        detect_layout(tmp_path)
    with pytest.raises(SourceError, match="unknown layout 'nope'"):
        read_source(tmp_path, "nope")
