"""A frozen version pins its images' bytes: export refuses a version whose files changed
(a crop rewritten by a recomputed signal, a source rewritten in place), training stops at
the first image that differs, and an export with the bytes restored is byte-identical."""

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from fercurate import export, fixes, schema, versions
from fercurate.errors import FercurateError
from tests.factories import planted_review_dataset, write_image
from training.data import load_split
from training.errors import TrainingError
from training.manifest import read_manifest_file


@pytest.fixture
def frozen(tmp_path, unique_name):
    ds, ids = planted_review_dataset(tmp_path / "fer2013", unique_name)
    fixes.propose(ds)
    fixes.decide(ds, [ids["tilted"], ids["mislabeled"]], schema.ACCEPT, curator="ana")
    versions.freeze(ds, "clean_v1", curator="ana")
    yield ds, ids, tmp_path
    from fercurate import dataset
    dataset.delete(ds.name)


def exported(ds, version="clean_v1") -> bytes:
    buf = io.BytesIO()
    export.export(ds, version, buf)
    return buf.getvalue()


def samples_of(data: bytes) -> dict[str, dict]:
    return {s["id"]: s for s in map(json.loads, data.decode().splitlines()[1:])}


def test_every_line_pins_the_bytes_of_its_file(frozen):
    ds, ids, _ = frozen
    data = exported(ds)
    assert json.loads(data.split(b"\n")[0])["format_version"] == 2
    samples = samples_of(data)
    for s in samples.values():
        assert s["sha256"] == hashlib.sha256(Path(s["filepath"]).read_bytes()).hexdigest()
    assert samples[ids["tilted"]]["filepath"].endswith("aligned.png")  # the crop is what is pinned


def test_a_rewritten_crop_is_refused_by_export_and_training_and_restoring_it_gives_the_same_bytes(frozen, tmp_path):
    ds, ids, _ = frozen
    first = exported(ds)
    manifest_path = tmp_path / "clean_v1.jsonl"
    manifest_path.write_bytes(first)
    crop = Path(samples_of(first)[ids["tilted"]]["filepath"])
    kept = tmp_path / "crop-as-frozen.png"
    shutil.copy(crop, kept)
    write_image(crop, 12345)  # e.g. faces recomputed with other crop parameters

    with pytest.raises(FercurateError, match=r"aligned\.png: has changed since version 'clean_v1'"):
        exported(ds)
    with pytest.raises(FercurateError, match="aligned.png"):
        export.export(ds, "clean_v1", tmp_path / "out", fmt="folder")
    assert not (tmp_path / "out").exists()  # refused before writing anything

    m = read_manifest_file(str(manifest_path))  # the manifest itself is intact ...
    with pytest.raises(TrainingError, match=r"aligned\.png: the image changed since the version was frozen"):
        load_split(m.split("train"), m.classes)  # ... its images are not: training stops

    shutil.copy(kept, crop)
    assert exported(ds) == first


def test_a_source_rewritten_in_place_blocks_export_and_a_new_freeze(frozen):
    ds, ids, _ = frozen
    clean = ds[ids["clean"]].filepath
    write_image(Path(clean), 777)
    with pytest.raises(FercurateError, match=rf"{clean}: has changed since version 'clean_v1'"):
        exported(ds)
    with pytest.raises(FercurateError, match=rf"{clean}: changed since it was ingested.*ingest .* --update"):
        versions.freeze(ds, "clean_v2")
    assert "clean_v2" not in versions.version_names(ds)


def test_a_deleted_image_is_named(frozen):
    ds, ids, _ = frozen
    clean = ds[ids["clean"]].filepath
    Path(clean).unlink()
    with pytest.raises(FercurateError, match=rf"{clean}: is missing or unreadable"):
        exported(ds)
