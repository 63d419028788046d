"""The given label stays given: ground_truth is read-only after ingest, an edit that
bypasses the lock is detected and refused by the signals, and ingest --update restores it."""

import fiftyone as fo
import pytest

from fercurate import dataset, given_labels, schema
from fercurate.cli import main
from fercurate.errors import FercurateError
from fercurate.signals import run_signals
from fercurate.sources import read_source
from tests import factories


@pytest.fixture
def ingested(tmp_path, unique_name):
    root = factories.fer2013_folder(tmp_path / "fer", per_class=2)
    dataset.ingest(read_source(root), unique_name)
    yield fo.load_dataset(unique_name), root
    dataset.delete(unique_name)


def test_ground_truth_is_read_only_after_ingest(ingested):
    ds, _ = ingested
    sample = ds.first()
    with pytest.raises(ValueError, match="read-only"):
        sample[schema.GROUND_TRUTH] = fo.Classification(label="happy")
    with pytest.raises(ValueError, match="read-only"):
        ds.set_values(f"{schema.GROUND_TRUTH}.label", ["happy"] * len(ds))
    assert ds.values(f"{schema.GROUND_TRUTH}.label") == ds.values(schema.INGESTED_LABEL)


def test_an_edit_behind_the_lock_is_reported_and_ingest_update_restores_it(ingested, capsys):
    ds, root = ingested
    sample = ds.match(fo.ViewField(f"{schema.GROUND_TRUTH}.label") == "angry").first()
    field = ds.get_field(schema.GROUND_TRUTH)
    field.read_only = False  # what an annotation tool or a script that unlocks the field can do
    field.save()
    sample[schema.GROUND_TRUTH] = fo.Classification(label="happy")
    sample.save()

    assert given_labels.edits(ds) == [(sample.id, "angry", "happy")]
    with pytest.raises(FercurateError, match=rf"1 given label\(s\) .* sample {sample.id}: 'angry' -> 'happy'.*--update"):
        run_signals(ds, ["quality"], log=lambda m: None)
    assert main(["status", ds.name]) == 0
    assert f"edited outside fercurate (e.g. {sample.id}" in capsys.readouterr().out

    assert main(["ingest", str(root), "--name", ds.name, "--update"]) == 0
    ds.reload()
    assert ds[sample.id][schema.GROUND_TRUTH].label == "angry" and given_labels.edits(ds) == []
    assert ds.get_field(schema.GROUND_TRUTH).read_only  # locked again
    assert run_signals(ds, ["quality"], log=lambda m: None) == ["quality"]
