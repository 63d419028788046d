"""The embeddings signal: open_clip or classifier vectors per sample, and the UMAP map."""

import fiftyone as fo
import numpy as np
import pytest
import torch
from PIL import Image

from fercurate import dataset, schema
from fercurate.errors import FercurateError
from fercurate.signals import resolve, run_signals
from fercurate.signals import embeddings as emb
from fercurate.signals.base import ChunkStore, SampleTable
from fercurate.signals.classifier import ClassifierParams
from fercurate.signals.label_issues import LabelIssueParams, LabelIssues, classifier_features
from fercurate.sources import read_source
from tests import factories

#: the smallest open_clip 3.3 architecture that builds offline: 43 M params, 256-d output
SMALL_CLIP = "ViT-S-32-alt"


@pytest.fixture(autouse=True)
def no_clip_env(monkeypatch):
    """Each test starts without CLIP settings, whatever the developer's shell exports."""
    monkeypatch.delenv(emb.ENV_CLIP_MODEL, raising=False)
    monkeypatch.delenv(emb.ENV_CLIP_WEIGHTS, raising=False)


@pytest.fixture(scope="module")
def random_clip(tmp_path_factory):
    """A randomly initialised small CLIP, its preprocess, and its weights saved as a checkpoint."""
    import open_clip
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(SMALL_CLIP, pretrained=None)
    checkpoint = tmp_path_factory.mktemp("clip") / "random.pt"
    torch.save(model.state_dict(), checkpoint)
    return model.eval(), preprocess, checkpoint


def make_dataset(root, name, per_class=1) -> fo.Dataset:
    if fo.dataset_exists(name):  # left by an earlier run on a shared FIFTYONE_DATABASE_URI
        fo.delete_dataset(name)
    dataset.ingest(read_source(factories.fer2013_folder(root, per_class=per_class)), name)
    return fo.load_dataset(name)


def assert_map_covers(ds: fo.Dataset) -> np.ndarray:
    """The UMAP run exists, with one 2-D point per sample; returns the points in ``ds`` order."""
    assert ds.list_brain_runs() == [schema.UMAP_BRAIN_KEY]
    results = ds.load_brain_results(schema.UMAP_BRAIN_KEY)
    assert results.points.shape == (len(ds), 2)
    row = {sample_id: r for r, sample_id in enumerate(results.sample_ids)}
    assert set(row) == set(ds.values("id"))
    return results.points[[row[i] for i in ds.values("id")]]


def test_requires_label_issues_only_without_clip_weights(monkeypatch, tmp_path):
    assert emb.Embeddings.requires == ("label_issues",)
    assert resolve(["embeddings"]) == ["duplicates", "label_issues", "embeddings"]
    monkeypatch.setenv(emb.ENV_CLIP_MODEL, SMALL_CLIP)
    monkeypatch.setenv(emb.ENV_CLIP_WEIGHTS, str(tmp_path / "w.pt"))
    assert emb.Embeddings.requires == ()
    assert resolve(["embeddings"]) == ["embeddings"]
    # an instance follows its own params, not the environment
    assert emb.Embeddings(emb.EmbeddingParams()).requires == ("label_issues",)


def test_clip_checkpoint_embeds_every_sample_with_its_weights(monkeypatch, tmp_path, unique_name, random_clip):
    model, preprocess, checkpoint = random_clip
    ds = make_dataset(tmp_path / "fer", unique_name)
    monkeypatch.setenv(emb.ENV_CLIP_MODEL, SMALL_CLIP)
    monkeypatch.setenv(emb.ENV_CLIP_WEIGHTS, str(checkpoint))

    assert run_signals(ds, ["embeddings"]) == ["embeddings"]  # no label_issues on this path

    ds.reload()
    vectors = np.stack(ds.values(schema.EMBEDDING))
    assert vectors.shape == (len(ds), model.visual.output_dim)
    path = ds.values("filepath")[3]
    with torch.inference_mode():
        expected = model.encode_image(preprocess(Image.open(path).convert("RGB"))[None], normalize=True)[0]
    np.testing.assert_allclose(ds.one(fo.ViewField("filepath") == path)[schema.EMBEDDING], expected.numpy(),
                               atol=1e-4)  # the checkpoint's weights, not a fresh random init
    summary = ds.info[schema.INFO_SIGNALS]["embeddings"]["summary"]
    assert summary == {**summary, "total": len(ds), "flagged": 0, "top": [], "source": "open_clip",
                       "model": SMALL_CLIP, "weights": str(checkpoint), "dim": model.visual.output_dim,
                       "umap_brain_key": schema.UMAP_BRAIN_KEY}
    assert_map_covers(ds)


def test_clip_chunks_already_saved_are_reused(tmp_path, random_clip):
    model, preprocess, _ = random_clip
    paths = [str(factories.write_image(tmp_path / f"{i}.png", i)) for i in range(5)]
    store = ChunkStore(tmp_path / "chunks")
    planted = np.full((2, model.visual.output_dim), 7.0, dtype=np.float32)
    store.save("chunk-00000", {"embedding": planted})  # as a killed run leaves it

    vectors = emb.clip_embeddings(model, preprocess, paths, store, batch_size=2, chunk_size=2)

    np.testing.assert_array_equal(vectors[:2], planted)
    np.testing.assert_allclose(np.linalg.norm(vectors[2:], axis=1), 1.0, atol=1e-5)
    assert store.has("chunk-00001") and store.has("chunk-00002")


def test_unreachable_pretrained_tag_fails_in_one_line(monkeypatch, tmp_path, unique_name):
    ds = make_dataset(tmp_path / "fer", unique_name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv(emb.ENV_CLIP_MODEL, "ViT-B-32")
    monkeypatch.setenv(emb.ENV_CLIP_WEIGHTS, "laion2b_s34b_b79k")

    with pytest.raises(FercurateError) as err:
        run_signals(ds, ["embeddings"])

    message = str(err.value)
    assert "\n" not in message
    assert "laion2b_s34b_b79k" in message and emb.ENV_CLIP_WEIGHTS in message and "local path" in message
    assert schema.EMBEDDING not in ds.get_field_schema()


@pytest.mark.parametrize("model_name, weights, expected", [
    (None, "some.pt", "FERCURATE_CLIP_MODEL"),
    ("NoSuchNet-7", "some.pt", "not an open_clip architecture"),
    ("ViT-B-32", None, "has no weights"),
    ("ViT-B-32", "no_such_tag", "neither a file nor a pretrained tag"),
])
def test_bad_clip_settings_name_the_setting(model_name, weights, expected):
    with pytest.raises(FercurateError, match=expected):
        emb.load_clip(model_name, weights)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    bogus = tmp_path / "other.pt"
    torch.save({"not_a_clip_weight": torch.zeros(3)}, bogus)
    with pytest.raises(FercurateError, match="could not be loaded into ViT-S-32-alt"):
        emb.load_clip(SMALL_CLIP, str(bogus))


def test_fallback_stores_classifier_features_and_maps_them(monkeypatch, tmp_path, unique_name):
    ds = make_dataset(tmp_path / "fer", unique_name, per_class=3)
    ids = ds.values("id")
    rng = np.random.default_rng(0)
    cluster = rng.permutation(np.arange(len(ids)) % 2)  # planted, independent of the labels
    centres = rng.normal(size=(2, 16)) * 10
    features = (centres[cluster] + rng.normal(size=(len(ids), 16))).astype(np.float32)
    order = rng.permutation(len(ids))  # the feature source need not follow the dataset order
    monkeypatch.setattr(emb, "classifier_features", lambda _ds: ([ids[i] for i in order], features[order]))

    signal = emb.Embeddings()
    summary = signal.compute_and_write(ds, SampleTable.load(ds), tmp_path / "work")

    ds.reload()
    np.testing.assert_allclose(np.stack(ds.values(schema.EMBEDDING)), features, rtol=1e-6)
    assert summary["source"] == "classifier" and summary["dim"] == 16 and summary["flagged"] == 0
    points = assert_map_covers(ds)
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert np.all(cluster[d.argmin(axis=1)] == cluster)  # the map keeps the planted clusters apart

    signal.compute_and_write(ds, SampleTable.load(ds), tmp_path / "work")  # a rerun replaces the map
    assert_map_covers(ds)


def test_fallback_without_features_for_every_sample_is_an_error(monkeypatch, tmp_path, unique_name):
    ds = make_dataset(tmp_path / "fer", unique_name)
    ids = ds.values("id")
    monkeypatch.setattr(emb, "classifier_features", lambda _ds: (ids[:-2], np.zeros((len(ids) - 2, 4))))
    with pytest.raises(FercurateError, match="label_issues has no classifier features for 2 samples"):
        emb.Embeddings().compute_and_write(ds, SampleTable.load(ds), tmp_path / "work")


def test_fallback_runs_the_label_issue_classifier_first(monkeypatch, tmp_path, unique_name):
    ds = make_dataset(tmp_path / "fer", unique_name)
    quick = LabelIssueParams(classifier=ClassifierParams(width=8, repeats=1, epochs=1, min_steps=1))
    monkeypatch.setattr(LabelIssues, "default_params", lambda self: quick)  # wiring, not accuracy

    assert run_signals(ds, ["embeddings"]) == ["duplicates", "label_issues", "embeddings"]

    ds.reload()
    feature_ids, features = classifier_features(ds)
    row = {sample_id: r for r, sample_id in enumerate(feature_ids)}
    expected = features[[row[i] for i in ds.values("id")]]
    np.testing.assert_allclose(np.stack(ds.values(schema.EMBEDDING)), expected, rtol=1e-6)
    summary = ds.info[schema.INFO_SIGNALS]["embeddings"]["summary"]
    assert summary["source"] == "classifier" and "fer_cnn" in summary["model"]
    assert summary["dim"] == features.shape[1]
    assert_map_covers(ds)
