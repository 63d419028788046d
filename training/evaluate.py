"""Clean evaluation: metrics against curated and raw labels, confusion matrix, per-image CSV, speed.

Every accuracy is reported twice: against the manifest's ``label`` ("curated") and against
its ``original_label`` ("raw"). FER2013's test labels are noisy, so a model trained on
cleaned labels can score lower on raw labels while being the better model; both numbers are
needed to tell.
"""

from __future__ import annotations

import csv
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score  # noqa: E402
from tqdm import tqdm  # noqa: E402

from training.data import IMAGE_SIZE, SplitData  # noqa: E402


@torch.no_grad()
def predict_probs(model: nn.Module, data: SplitData, batch_size: int = 512, device: torch.device | str = "cpu",
                  desc: str = "predict") -> torch.Tensor:
    """Softmax probabilities (N, C) on the un-augmented images."""
    model.eval()
    out = []
    for start in tqdm(range(0, len(data), batch_size), desc=desc, unit="batch", leave=False):
        x = data.float_images(slice(start, start + batch_size)).to(device)
        out.append(torch.softmax(model(x).float(), -1).cpu())
    return torch.cat(out)


def label_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """accuracy, macro-F1, per-class recall and the confusion matrix (rows = true class)."""
    labels = np.arange(len(classes))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class_recall": {c: float(r) for c, r in zip(classes, recall)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def split_metrics(probs: torch.Tensor, data: SplitData, classes: list[str]) -> dict:
    """{"curated": metrics vs manifest labels, "raw": metrics vs original labels, "n_images": N}."""
    pred = probs.argmax(-1).numpy()
    return {
        "n_images": len(data),
        "curated": label_metrics(data.labels.numpy(), pred, classes),
        "raw": label_metrics(data.raw_labels.numpy(), pred, classes),
    }


def write_predictions_csv(path: str, probs: torch.Tensor, data: SplitData, classes: list[str]) -> None:
    """One row per image: path, curated label, raw label, predicted label, one probability per class."""
    pred = probs.argmax(-1).tolist()
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "label", "original_label", "predicted", *[f"p_{c}" for c in classes]])
        for i, p in enumerate(probs.tolist()):
            w.writerow([data.paths[i], classes[int(data.labels[i])], classes[int(data.raw_labels[i])],
                        classes[pred[i]], *[f"{v:.6f}" for v in p]])


def plot_confusion(matrix: list[list[int]], classes: list[str], path: str, title: str) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with counts in the cells."""
    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confident_mistakes(probs: torch.Tensor, data: SplitData, classes: list[str], k: int = 24) -> list[dict]:
    """The k images the model gets wrong with the highest confidence (against the curated labels).

    On FER2013 many of these are label errors rather than model errors, so they are the
    images worth sending back to review.
    """
    conf, pred = probs.max(-1)
    wrong = torch.nonzero(pred != data.labels).flatten()
    top = wrong[torch.argsort(conf[wrong], descending=True, stable=True)][:k].tolist()
    return [{"index": i, "filepath": data.paths[i], "label": classes[int(data.labels[i])],
             "original_label": classes[int(data.raw_labels[i])], "predicted": classes[int(pred[i])],
             "confidence": float(conf[i])} for i in top]


def plot_mistakes(data: SplitData, mistakes: list[dict], path: str, title: str, cols: int = 8) -> None:
    """A contact sheet of :func:`confident_mistakes`: each face with 'label -> predicted (confidence)'."""
    rows = max(1, math.ceil(len(mistakes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.45 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, mistakes):
        ax.imshow(data.images[m["index"], 0].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{m['label']}→{m['predicted']}\n{m['confidence']:.2f}", fontsize=6.5)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def median_latency_ms(run, iters: int = 200, warmup: int = 10) -> float:
    """Median wall time of ``run()`` in milliseconds after ``warmup`` calls (medians resist a shared machine)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(max(1, iters)):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


@torch.no_grad()
def cpu_speed(model: nn.Module, iters: int = 200, batch_size: int = 64, warmup: int = 10) -> dict:
    """Median CPU latency per image at batch 1 on ONE thread, and throughput at ``batch_size`` on the
    current thread count. Medians resist the noise of a shared machine; still only indicative there."""
    model = model.cpu().eval()
    x1 = torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        latency_ms = median_latency_ms(lambda: model(x1), iters, warmup)
    finally:
        torch.set_num_threads(threads)
    xb = torch.rand(batch_size, 1, IMAGE_SIZE, IMAGE_SIZE)
    model(xb)
    reps = max(3, iters // 20)
    t0 = time.perf_counter()
    for _ in range(reps):
        model(xb)
    elapsed = time.perf_counter() - t0
    return {
        "latency_ms_batch1_1thread": latency_ms,
        "throughput_img_s": reps * batch_size / elapsed,
        "throughput_batch": batch_size,
        "throughput_threads": threads,
    }
