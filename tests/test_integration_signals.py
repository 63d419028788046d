"""All signals on a stratified ~700-image subset of the real FER2013: sane ranges, not exact numbers."""

import os

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from fercurate import dataset, schema
from fercurate.signals import resolve, run_signals
from fercurate.sources import read_source
from tests.subsets import stratified_fer2013

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scored(shared_fer2013_module, tmp_path_factory):
    root = tmp_path_factory.mktemp("fer700") / "fer2013"
    stratified_fer2013(shared_fer2013_module, root)
    name = "it-signals-700"
    dataset.ingest(read_source(root), name)
    ds = fo.load_dataset(name)
    ran = run_signals(ds, log=lambda m: None)
    return ds, ran


@pytest.fixture(scope="module")
def shared_fer2013_module():
    from tests.conftest import SHARED_FER2013
    if not (SHARED_FER2013 / "train").is_dir():
        pytest.skip(f"real FER2013 not found at {SHARED_FER2013} (set FERCURATE_TEST_FER2013 to run this test)")
    return SHARED_FER2013


def test_every_signal_ran_and_recorded_a_summary(scored):
    ds, ran = scored
    assert ran == resolve(None)
    for name in ran:
        summary = ds.info[schema.INFO_SIGNALS][name]["summary"]
        assert summary["total"] == 700 and 0 <= summary["flagged"] <= 700
    # nothing changed: every signal is skipped
    assert run_signals(ds, log=lambda m: None) == []


def test_quality_flags_few_real_faces(scored):
    ds, _ = scored
    scores = np.array(ds.values(schema.QUALITY_SCORE))
    assert ((scores >= 0) & (scores <= 1)).all()
    assert ds.count_values(schema.IS_LOW_QUALITY).get(True, 0) < 0.1 * 700


def test_faces_are_found_on_most_images_and_crops_are_uniform(scored):
    ds, _ = scored
    non_faces = ds.count_values(schema.IS_NON_FACE).get(True, 0)
    assert non_faces < 0.1 * 700
    # real faces: almost none is unusable, and every flag says why
    assert ds.count_values(schema.IS_UNUSABLE).get(True, 0) <= non_faces
    flagged = ds.match(fo.ViewField(schema.IS_UNUSABLE) == True)  # noqa: E712
    assert all(r for r in flagged.values(schema.USABILITY_REASONS))
    aligned = ds.match(fo.ViewField(schema.ALIGNMENT) == "aligned")
    assert len(aligned) > 0.85 * 700
    sizes = {Image.open(p).size for p in aligned.values(schema.ALIGNED_FILEPATH)[:50]}
    assert len(sizes) == 1
    assert all(len(kp.keypoints[0].points) == 468 for kp in aligned.limit(20).values(schema.FACE_LANDMARKS))
    assert ds.match(fo.ViewField(schema.ALIGNMENT) != "aligned").count(schema.ALIGNED_FILEPATH) == 0


def test_duplicates_are_rare_and_each_group_has_one_keeper(scored):
    ds, _ = scored
    grouped = ds.exists(schema.DUP_GROUP)
    assert len(grouped) < 0.2 * 700
    keepers = grouped.match(fo.ViewField(schema.DUP_KEEPER) == True)  # noqa: E712
    assert len(keepers) == len(set(grouped.values(schema.DUP_GROUP)))


def test_label_issues_beat_chance_and_flag_a_minority(scored):
    ds, _ = scored
    probs = np.array(ds.values(schema.OOF_PROBS))
    assert probs.shape == (700, 7) and np.allclose(probs.sum(1), 1, atol=1e-3)
    classes = ds.info[schema.INFO_CLASSES]
    given = np.array([classes.index(lab) for lab in ds.values("ground_truth.label")])
    accuracy = (probs.argmax(1) == given).mean()
    assert accuracy > 1 / 7 + 0.05, accuracy  # out-of-fold, from scratch on 700 faces
    flagged = ds.count_values(schema.IS_LABEL_ISSUE).get(True, 0)
    assert 0.02 * 700 < flagged < 0.7 * 700
    q = np.array(ds.values(schema.LABEL_QUALITY))
    assert ((q >= 0) & (q <= 1)).all()


def test_embeddings_and_map_cover_every_sample(scored):
    ds, _ = scored
    assert ds.count(schema.EMBEDDING) == 700
    assert schema.UMAP_BRAIN_KEY in ds.list_brain_runs()
    assert len(ds.load_brain_results(schema.UMAP_BRAIN_KEY).points) == 700


def test_balance_plan_is_stored_with_a_chart(scored):
    ds, _ = scored
    plan = ds.info[schema.INFO_BALANCE]
    assert plan and os.path.isfile(ds.info[schema.INFO_SIGNALS]["balance"]["summary"]["chart"])
