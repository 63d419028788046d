"""The ``embeddings`` signal: one vector per face, and the UMAP map the App draws from it.

Where the vectors come from:

* **open_clip image embeddings**, when CLIP weights are configured: params
  ``clip_model`` / ``clip_pretrained``, or the environment variables

  - ``FERCURATE_CLIP_MODEL``: an open_clip architecture, e.g. ``ViT-B-32``
    (``open_clip.list_models()`` lists them), or ``local-dir:/path`` / ``hf-hub:org/repo``;
  - ``FERCURATE_CLIP_WEIGHTS``: a local checkpoint (``.pt`` / ``.bin`` / ``.safetensors``)
    for that architecture, or, online only, a pretrained tag such as
    ``laion2b_s34b_b79k`` (``open_clip.list_pretrained_tags_by_model(name)``).

  A tag is fetched from the Hugging Face hub by open_clip itself; with
  ``HF_HUB_OFFLINE=1`` nothing is downloaded, and a tag that is not already in the hub
  cache fails with a one-line error that says how to use a local checkpoint instead.
* **the label-issue classifier's penultimate features** otherwise (the default, offline
  and weight-free): the signal then requires ``label_issues`` and reuses its network.

Either way the vectors go to ``schema.EMBEDDING`` and a 2-D UMAP of them is stored as the
brain run ``schema.UMAP_BRAIN_KEY``. In the App: "+" > Embeddings (or the saved workspace
"fercurate map"), click the run, then "Color by" ``ground_truth.label`` or any flag
such as ``is_label_issue``.
The signal flags nothing: its summary says which model produced the vectors.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import fiftyone as fo
import fiftyone.brain as fob
from tqdm import tqdm

from fercurate import schema
from fercurate.errors import FercurateError
from fercurate.signals import computed, register
from fercurate.signals.base import ChunkStore, FieldWrite, SampleTable, Signal, SignalResult, chunked
# Imported (so registered) before this signal, which may require it.
from fercurate.signals.label_issues import NAME as LABEL_ISSUES, classifier_features

ENV_CLIP_MODEL = "FERCURATE_CLIP_MODEL"
ENV_CLIP_WEIGHTS = "FERCURATE_CLIP_WEIGHTS"
#: open_clip model-name schemas that carry their own weights (``pretrained`` is ignored)
SELF_WEIGHTED_SCHEMAS = ("hf-hub:", "local-dir:")
MAP_WORKSPACE = "fercurate map"  # TODO(schema): move to schema.py


@dataclass
class EmbeddingParams:
    clip_model: str | None = None       # open_clip architecture; None -> classifier features
    clip_pretrained: str | None = None  # local checkpoint path, or a hub tag (online only)
    batch_size: int = 64
    chunk_size: int = 1024              # images per resumable chunk
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    umap_metric: str = "cosine"         # both sources' vectors compare by direction
    seed: int = 51


def uses_clip(params: EmbeddingParams) -> bool:
    return bool(params.clip_model or params.clip_pretrained)


class _RequiresFromParams:
    """``requires`` that depends on the params.

    The runner reads ``requires`` on the class to order the signals (the class then
    stands for its default params, i.e. the environment) and on the instance to
    fingerprint it: the CLIP path must not depend on ``label_issues``, or a relabel
    would make CLIP embeddings stale.
    """

    def __get__(self, obj: Signal | None, owner: type[Signal]) -> tuple[str, ...]:
        params = (obj if obj is not None else owner()).params
        return () if uses_clip(params) else (LABEL_ISSUES,)


@register
class Embeddings(Signal):
    """open_clip embeddings (with your weights) or the label-issue CNN's features, and a UMAP map."""

    name = "embeddings"
    requires = _RequiresFromParams()
    # The classifier path reads labels through label_issues, whose fingerprint is ours.
    uses_labels = False

    def default_params(self) -> EmbeddingParams:
        return EmbeddingParams(clip_model=os.environ.get(ENV_CLIP_MODEL) or None,
                               clip_pretrained=os.environ.get(ENV_CLIP_WEIGHTS) or None)

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p = self.params
        t0 = time.perf_counter()
        if uses_clip(p):
            model, preprocess = load_clip(p.clip_model, p.clip_pretrained)
            vectors = clip_embeddings(model, preprocess, table.filepaths, ChunkStore(work_dir / "clip"),
                                      p.batch_size, p.chunk_size)
            source = {"source": "open_clip", "model": p.clip_model, "weights": p.clip_pretrained}
        else:
            vectors = classifier_embeddings(ds, table)
            source = {"source": "classifier", "model": classifier_name(ds), "weights": None}
        summary = {"total": len(table), "flagged": 0, "top": [], **source, "dim": int(vectors.shape[1]),
                   "umap_brain_key": schema.UMAP_BRAIN_KEY, "workspace": MAP_WORKSPACE,
                   "seconds": {"embed": round(time.perf_counter() - t0, 1)}}

        def finish(ds: fo.Dataset) -> None:
            """The map is a brain run over the stored field, so it follows the field's write."""
            t1 = time.perf_counter()
            compute_map(ds, p)
            save_map_workspace(ds)
            summary["seconds"]["umap"] = round(time.perf_counter() - t1, 1)
        return SignalResult(summary, [FieldWrite(schema.EMBEDDING, fo.VectorField, list(vectors))], finish)


# --- open_clip -----------------------------------------------------------------------

def load_clip(model_name: str | None, pretrained: str | None):
    """Build ``model_name`` with its weights through open_clip; returns (model, preprocess).

    Every way the configuration can be wrong ends in a one-line FercurateError naming the
    setting: random weights would silently give a meaningless map, so they are refused.
    """
    import open_clip

    self_weighted = bool(model_name) and model_name.startswith(SELF_WEIGHTED_SCHEMAS)
    if not model_name:
        raise FercurateError(f"{ENV_CLIP_WEIGHTS} (clip_pretrained) is set but {ENV_CLIP_MODEL} (clip_model) "
                             f"is not; set it to the checkpoint's architecture, e.g. ViT-B-32")
    if not self_weighted and model_name not in open_clip.list_models():
        raise FercurateError(f"{ENV_CLIP_MODEL}='{model_name}' is not an open_clip architecture; "
                             f"pick one of open_clip.list_models(), e.g. ViT-B-32")
    if not self_weighted and not pretrained:
        raise FercurateError(f"{ENV_CLIP_MODEL}='{model_name}' has no weights; set {ENV_CLIP_WEIGHTS} to a "
                             f"local checkpoint (.pt/.bin/.safetensors) or unset {ENV_CLIP_MODEL}")
    is_file = bool(pretrained) and os.path.isfile(pretrained)
    tags = [] if self_weighted else open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained and not self_weighted and not is_file and pretrained not in tags:
        raise FercurateError(f"{ENV_CLIP_WEIGHTS}='{pretrained}' is neither a file nor a pretrained tag of "
                             f"{model_name} (tags: {', '.join(tags) or 'none'})")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=None if self_weighted else pretrained)
    except Exception as e:  # open_clip wraps hub, network and state-dict errors alike
        raise _clip_load_error(model_name, pretrained, is_file, e) from e
    return model.eval(), preprocess


def _clip_load_error(model_name: str, pretrained: str | None, is_file: bool, e: Exception) -> FercurateError:
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    if is_file:
        return FercurateError(f"{ENV_CLIP_WEIGHTS}='{pretrained}' could not be loaded into {model_name} "
                              f"({reason}); check that the checkpoint is for this architecture")
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
    what = f"pretrained tag '{pretrained}'" if pretrained else f"'{model_name}'"
    return FercurateError(f"could not fetch {what} for {ENV_CLIP_MODEL}={model_name} from the hub{offline}; "
                          f"download the checkpoint where there is internet and set {ENV_CLIP_WEIGHTS} "
                          f"to its local path (.pt/.bin/.safetensors)")


def clip_embeddings(model, preprocess, filepaths: list[str], store: ChunkStore, batch_size: int,
                    chunk_size: int) -> np.ndarray:
    """Unit-length image embeddings of every file, one saved chunk at a time (resumable)."""
    parts = []
    with tqdm(total=len(filepaths), desc="embeddings (open_clip)", unit="img") as bar:
        for k, sl in chunked(len(filepaths), chunk_size):
            key = f"chunk-{k:05d}"
            if store.has(key):
                bar.update(sl.stop - sl.start)
            part = store.get(key, lambda: {"embedding": embed_images(model, preprocess, filepaths[sl],
                                                                     batch_size, bar)})
            parts.append(part["embedding"])
    return np.concatenate(parts)


def embed_images(model, preprocess, filepaths: list[str], batch_size: int, bar: tqdm | None = None) -> np.ndarray:
    """Grayscale faces -> RGB -> the model's own preprocess -> normalised image embeddings."""
    import torch
    from PIL import Image

    out = []
    with torch.inference_mode():
        for start in range(0, len(filepaths), batch_size):
            batch = [preprocess(Image.open(f).convert("RGB")) for f in filepaths[start:start + batch_size]]
            out.append(model.encode_image(torch.stack(batch), normalize=True).float().numpy())
            if bar is not None:
                bar.update(len(batch))
    return np.concatenate(out).astype(np.float32)


# --- classifier fallback -------------------------------------------------------------

def classifier_embeddings(ds: fo.Dataset, table: SampleTable) -> np.ndarray:
    """The label-issue classifier's penultimate features, in ``table`` order."""
    ids, features = classifier_features(ds)
    row = {sample_id: r for r, sample_id in enumerate(ids)}
    missing = sum(sample_id not in row for sample_id in table.ids)
    if missing:
        raise FercurateError(f"{LABEL_ISSUES} has no classifier features for {missing} samples; "
                             f"run 'fercurate compute {LABEL_ISSUES} --recompute' first")
    return np.asarray(features, dtype=np.float32)[[row[sample_id] for sample_id in table.ids]]


def classifier_name(ds: fo.Dataset) -> str:
    arch = computed(ds).get(LABEL_ISSUES, {}).get("params", {}).get("classifier", {}).get("arch", "?")
    return f"{LABEL_ISSUES} classifier '{arch}' (fold-0 model, penultimate layer)"


# --- storage and map -----------------------------------------------------------------

def compute_map(ds: fo.Dataset, params: EmbeddingParams) -> None:
    """A seeded 2-D UMAP of ``schema.EMBEDDING``, replacing any earlier map of that key."""
    if schema.UMAP_BRAIN_KEY in ds.list_brain_runs():
        ds.delete_brain_run(schema.UMAP_BRAIN_KEY)
    fob.compute_visualization(ds, embeddings=schema.EMBEDDING, method="umap", brain_key=schema.UMAP_BRAIN_KEY,
                              num_dims=2, seed=params.seed, num_neighbors=params.umap_neighbors,
                              min_dist=params.umap_min_dist, metric=params.umap_metric)


def map_workspace() -> fo.Space:
    """The sample grid beside the Embeddings panel.

    FiftyOne 1.22's Embeddings panel resets its chosen run and colour field when it
    mounts, so a workspace cannot preselect them: the panel opens on its list of runs,
    one click from the map.
    """
    def tab(panel: fo.Panel) -> fo.Space:  # a space shows nothing until a child is active
        return fo.Space(children=[panel], active_child=panel.component_id)
    return fo.Space(children=[tab(fo.Panel(type="Samples", pinned=True)), tab(fo.Panel(type="Embeddings"))],
                    orientation="horizontal")


def save_map_workspace(ds: fo.Dataset) -> None:
    """Save :func:`map_workspace` on the dataset, so the App's workspace menu opens it."""
    ds.save_workspace(MAP_WORKSPACE, map_workspace(), description="sample grid beside the UMAP map",
                      overwrite=True)
