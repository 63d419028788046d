"""balance: counts per split before and after hand-set fix proposals, weights that favour
the minority class, an oversampling plan, a chart, and staleness when a proposal changes."""

from pathlib import Path

import fiftyone as fo
import pytest
from PIL import Image

from fercurate import config, dataset, schema
from fercurate.errors import FercurateError
from fercurate.signals import balance, computed, run_signals
from fercurate.signals.base import SampleTable
from fercurate.sources import read_source
from tests import factories

#: images per (split, class): happy is the majority, disgust the minority
PLAN = {
    ("train", "happy"): 24, ("train", "sad"): 12, ("train", "angry"): 10, ("train", "disgust"): 3,
    ("val", "happy"): 4, ("val", "disgust"): 1, ("test", "happy"): 3, ("test", "sad"): 2,
}
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
CLASSES = list(schema.EMOTIONS)


def build(root: Path, name: str) -> fo.Dataset:
    seed = 0
    for (split, label), n in PLAN.items():
        top = "train" if split == "train" else "test"
        for _ in range(n):
            seed += 1
            factories.write_image(root / top / label / f"{USAGE[split]}_{seed}.jpg", seed, "JPEG")
    dataset.ingest(read_source(root), name)
    return fo.load_dataset(name)


def samples(ds: fo.Dataset, split: str, label: str) -> list[str]:
    return ds.match((fo.ViewField(schema.SPLIT) == split)
                    & (fo.ViewField(f"{schema.GROUND_TRUTH}.label") == label)).values("id")


def propose(ds: fo.Dataset) -> dict:
    """Hand-set fix fields, as the other signals would write them; returns the plan."""
    happy, sad, disgust_val = samples(ds, "train", "happy"), samples(ds, "train", "sad"), samples(ds, "val", "disgust")
    flags = {
        schema.IS_DUPLICATE: happy[:3] + disgust_val,   # 3 train happy, the val disgust
        schema.IS_UNUSABLE: sad[:1],
        schema.IS_LOW_QUALITY: sad[1:2] + happy[:1],    # happy[0] also a duplicate: dropped once
        schema.IS_LABEL_ISSUE: happy[3:6] + sad[:1],    # sad[0] is also dropped: stays dropped
    }
    for field, ids in flags.items():
        ds.add_sample_field(field, fo.BooleanField)
        ds.set_values(field, {i: i in set(ids) for i in ds.values("id")}, key_field="id")
    ds.add_sample_field(schema.SUGGESTED_LABEL, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    ds.set_values(schema.SUGGESTED_LABEL, {i: fo.Classification(label="disgust", confidence=0.9)
                                           for i in happy[3:6] + sad[:1]}, key_field="id")
    return flags


def counts_from_plan() -> dict:
    out = {}
    for (split, label), n in PLAN.items():
        out.setdefault(split, {c: 0 for c in CLASSES})[label] = n
    return {s: out[s] for s in ("train", "val", "test")}


@pytest.fixture
def ds(tmp_path, unique_name):
    if fo.dataset_exists(unique_name):  # left by an earlier run on the same database
        fo.delete_dataset(unique_name)
    return build(tmp_path / "fer", unique_name)


def test_counts_before_and_after_follow_the_proposed_fixes(ds):
    propose(ds)
    assert run_signals(ds, ["balance"], log=lambda m: None) == ["balance"]
    ds.reload()
    info = ds.info[schema.INFO_BALANCE]
    before = counts_from_plan()
    assert info["counts_before"] == before
    after = {s: dict(c) for s, c in before.items()}
    after["train"]["happy"] -= 3 + 3       # 3 duplicates dropped, 3 relabelled away
    after["train"]["disgust"] += 3         # ... to disgust
    after["train"]["sad"] -= 2             # non-face and low quality; the relabel of sad[0] is moot
    after["val"]["disgust"] -= 1
    assert info["counts_after"] == after
    assert info["fixes"]["dropped_total"] == 3 + 1 + 1 + 1 and info["fixes"]["relabelled"] == 3
    assert info["fixes"]["dropped"] == {schema.IS_DUPLICATE: 4, schema.IS_UNUSABLE: 1, schema.IS_LOW_QUALITY: 1}
    summary = computed(ds)["balance"]["summary"]
    assert summary["total"] == sum(PLAN.values()) and summary["top"] == []


def test_missing_fix_fields_propose_nothing(ds):
    run_signals(ds, ["balance"], log=lambda m: None)
    ds.reload()
    info = ds.info[schema.INFO_BALANCE]
    assert info["counts_after"] == info["counts_before"] == counts_from_plan()
    assert set(info["fixes"]["fields_missing"]) == {*balance.DROP_FLAGS, schema.IS_LABEL_ISSUE}


@pytest.mark.parametrize("weighting", balance.WEIGHTINGS)
def test_minority_class_weighs_more_and_is_oversampled(ds, weighting):
    signal = balance.BalanceSignal(balance.BalanceParams(weighting=weighting))
    summary = signal.compute_and_write(ds, SampleTable.load(ds), Path("/unused"))
    w = summary["weights"]
    assert w["disgust"] > w["angry"] > w["sad"] > w["happy"] > 0
    assert w["fear"] == 0.0  # no train samples
    present = [w[c] for c in ("happy", "sad", "angry", "disgust")]
    assert abs(sum(present) / len(present) - 1.0) < 1e-3
    plan = summary["oversampling"]
    assert plan["target_count"] == 11  # median of 24, 12, 10, 3
    assert plan["repeat"]["disgust"] == pytest.approx(11 / 3, abs=1e-3) and plan["repeat"]["happy"] == 1.0
    assert summary["minority_classes"] == ["disgust"]
    assert summary["absent_classes"] == ["fear", "neutral", "surprise"] and summary["flagged"] == 4


def test_effective_number_weights_are_gentler_than_inverse_frequency():
    counts = {"a": 1000, "b": 10}
    eff = balance.class_weights(counts, "effective_number", 0.99)
    inv = balance.class_weights(counts, "inverse_frequency", 0.99)
    assert 1 < eff["b"] / eff["a"] < inv["b"] / inv["a"] == pytest.approx(100, rel=1e-3)


def test_chart_is_written_to_the_reports_folder(ds):
    run_signals(ds, ["balance"], log=lambda m: None)
    path = config.reports_dir(ds.name) / "balance.png"
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 400


def test_a_changed_proposal_makes_balance_stale(ds):
    flags = propose(ds)
    assert run_signals(ds, ["balance"], log=lambda m: None) == ["balance"]
    assert run_signals(ds, ["balance"], log=lambda m: None) == []
    flipped = flags[schema.IS_DUPLICATE][0]
    ds.set_values(schema.IS_DUPLICATE, {flipped: False}, key_field="id")
    assert run_signals(ds, ["balance"], log=lambda m: None) == ["balance"]
    ds.reload()
    assert ds.info[schema.INFO_BALANCE]["fixes"]["dropped"][schema.IS_DUPLICATE] == 3


def test_unknown_weighting_is_a_one_line_error(ds):
    signal = balance.BalanceSignal(balance.BalanceParams(weighting="magic"))
    with pytest.raises(FercurateError, match="weighting 'magic'"):
        signal.compute_and_write(ds, SampleTable.load(ds), Path("/unused"))
