"""Every signal on the bundled sample of real FER2013 faces, as ``fercurate launch`` scores it:
sane ranges, not exact numbers. (The sample ships with fercurate, so this runs everywhere.)"""

import os

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from fercurate import schema
from fercurate.signals import resolve, run_signals


@pytest.fixture(scope="module")
def scored(launched_sample):
    _, ds = launched_sample
    return ds, len(ds)


def test_every_signal_ran_and_recorded_a_summary(scored):
    ds, n = scored
    assert n >= 350
    assert set(ds.info[schema.INFO_SIGNALS]) == set(resolve(None))
    for name in resolve(None):
        summary = ds.info[schema.INFO_SIGNALS][name]["summary"]
        assert summary["total"] == n and 0 <= summary["flagged"] <= n
    # nothing changed: every signal is skipped
    assert run_signals(ds, log=lambda m: None) == []


def test_quality_flags_few_real_faces(scored):
    ds, n = scored
    scores = np.array(ds.values(schema.QUALITY_SCORE))
    assert ((scores >= 0) & (scores <= 1)).all()
    assert ds.count_values(schema.IS_LOW_QUALITY).get(True, 0) < 0.1 * n


def test_faces_are_found_on_most_images_and_crops_are_uniform(scored):
    ds, n = scored
    non_faces = ds.count_values(schema.IS_NON_FACE).get(True, 0)
    assert non_faces < 0.1 * n
    # real faces: almost none is unusable, and every flag says why
    assert ds.count_values(schema.IS_UNUSABLE).get(True, 0) <= non_faces
    flagged = ds.match(fo.ViewField(schema.IS_UNUSABLE) == True)  # noqa: E712
    assert all(r for r in flagged.values(schema.USABILITY_REASONS))
    aligned = ds.match(fo.ViewField(schema.ALIGNMENT) == "aligned")
    assert len(aligned) > 0.85 * n
    sizes = {Image.open(p).size for p in aligned.values(schema.ALIGNED_FILEPATH)[:50]}
    assert len(sizes) == 1
    assert all(len(kp.keypoints[0].points) == 468 for kp in aligned.limit(20).values(schema.FACE_LANDMARKS))
    assert ds.match(fo.ViewField(schema.ALIGNMENT) != "aligned").count(schema.ALIGNED_FILEPATH) == 0


def test_duplicates_are_rare_and_each_group_has_one_keeper(scored):
    ds, n = scored
    grouped = ds.exists(schema.DUP_GROUP)
    assert len(grouped) < 0.2 * n
    keepers = grouped.match(fo.ViewField(schema.DUP_KEEPER) == True)  # noqa: E712
    assert len(keepers) == len(set(grouped.values(schema.DUP_GROUP)))


def test_label_issues_beat_chance_and_flag_a_minority(scored):
    ds, n = scored
    probs = np.array(ds.values(schema.OOF_PROBS))
    assert probs.shape == (n, 7) and np.allclose(probs.sum(1), 1, atol=1e-3)
    classes = ds.info[schema.INFO_CLASSES]
    given = np.array([classes.index(lab) for lab in ds.values("ground_truth.label")])
    accuracy = (probs.argmax(1) == given).mean()
    assert accuracy > 1 / 7 + 0.05, accuracy  # out-of-fold, from scratch on the sample's faces
    flagged = ds.count_values(schema.IS_LABEL_ISSUE).get(True, 0)
    assert 0.02 * n < flagged < 0.7 * n
    q = np.array(ds.values(schema.LABEL_QUALITY))
    assert ((q >= 0) & (q <= 1)).all()


def test_embeddings_and_map_cover_every_sample(scored):
    ds, n = scored
    assert ds.count(schema.EMBEDDING) == n
    assert schema.UMAP_BRAIN_KEY in ds.list_brain_runs()
    assert len(ds.load_brain_results(schema.UMAP_BRAIN_KEY).points) == n


def test_balance_plan_is_stored_with_a_chart(scored):
    ds, n = scored
    plan = ds.info[schema.INFO_BALANCE]
    assert plan and os.path.isfile(ds.info[schema.INFO_SIGNALS]["balance"]["summary"]["chart"])
