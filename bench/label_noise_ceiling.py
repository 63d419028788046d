"""How far better noise modelling could go: ceilings of label curation, with the crowd as an oracle.

    FERCURATE_HOME=/tmp/fc-home python bench/label_noise_ceiling.py fer2013 ../shared/data/ferplus-val/votes.csv

Every recipe of the label-noise model tried so far (rounds, repeats, widths, epochs,
small-loss selection, soft targets; ``label_noise_methods.py``) lands within a point on
the crowd truth. This benchmark asks which part caps it: the *class-level* noise model
(confident learning's noise matrix), the *policy* that turns scores into fixes, or the
*image model* (the out-of-fold CNN). Here the crowd votes play an **oracle** that bounds a
family of methods; they are never an input of the product (``fercurate`` does not read
this file), and nothing here is a default.

On the images with crowd votes (FER2013: the val split), from a launched dataset's
out-of-fold probabilities:

1. ``class_noise``: the product's posterior (:mod:`fercurate.signals.noise_model`) with
   confident learning's noise matrix, and with the *true* class-level noise matrix
   ``T[i, j] = P(given = i | crowd = j)`` counted on the voted images themselves: what the
   best possible estimate of class-conditional noise would buy.
2. ``best_policy``: with either matrix, the best any keep/relabel/drop policy over that
   posterior can do: keep the share ``s`` of images whose posterior is most certain,
   labelled with its argmax (kept or relabelled); the kept labels' accuracy vs the crowd.
3. ``stronger_model``: a better image model, simulated by blending the voted images'
   probabilities with the crowd's vote shares, ``(1 - a) p + a * votes``, then scored by
   the product's own rule: how much the model must agree with people before the ranking
   and the kept labels reach the targets. Crude (a real model errs elsewhere), it sizes
   the gap; it is not a method.

Writes ``bench/results/label_noise_ceiling.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crowd import bench_parser, load_launched, most_trusted, ranking_metrics, read_votes, share  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KEPT_SHARES = (0.75, 0.8)
BLENDS = (0.0, 0.1, 0.2, 0.3, 0.4)
POWERS = (0.5, 1.0)


def oracle_noise(given: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """``T[i, j] = P(given = i | true = j)`` counted on labelled pairs; a class with no
    true sample keeps an identity column. Columns sum to 1, as cleanlab's noise matrix."""
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (given, truth), 1)
    total = counts.sum(axis=0, keepdims=True)
    return np.where(total > 0, counts / np.clip(total, 1, None), np.eye(num_classes))


def kept_accuracy(confidence: np.ndarray, right: np.ndarray, kept_share: float) -> float:
    """Accuracy of the ``kept_share`` most confident items (ties: first in order)."""
    return round(float(right[most_trusted(confidence, kept_share)].mean()), 4)


def best_policy(post: np.ndarray, given: np.ndarray, truth: np.ndarray, kept_share: float) -> dict:
    """Keep the ``kept_share`` images whose posterior argmax is most certain, each with that
    argmax as its label: the best curation the posterior allows at that share."""
    label, confidence = post.argmax(axis=1), post.max(axis=1)
    keep = most_trusted(confidence, kept_share)
    changed = label[keep] != given[keep]
    return {"accuracy_vs_crowd_kept": round(float((label[keep] == truth[keep]).mean()), 4),
            "relabelled": int(changed.sum()),
            "relabel_right": share(label[keep][changed] == truth[keep][changed])}


def class_noise_rows(labels: np.ndarray, probs: np.ndarray, rows: np.ndarray, truth: np.ndarray) -> dict:
    """Ranking and best policy on ``rows`` (voted samples with a 7-class crowd label
    ``truth``) with confident learning's noise matrix and with the oracle's."""
    from fercurate.signals.noise_model import estimate_noise, posterior
    wrong = labels[rows] != truth
    matrices = {"confident_learning": estimate_noise(labels, probs).noise,
                "oracle_class_noise": oracle_noise(labels[rows], truth, probs.shape[1])}
    out: dict = {}
    for name, noise in matrices.items():
        for power in POWERS:
            post = posterior(labels, probs, noise, power)[rows]
            quality = post[np.arange(len(rows)), labels[rows]]
            out[f"{name}@power{power:g}"] = {
                "ranking": ranking_metrics(wrong, quality, (250, 500)),
                "drop_only_kept_accuracy": {f"{s:g}": kept_accuracy(quality, ~wrong, s) for s in KEPT_SHARES},
                "best_policy": {f"{s:g}": best_policy(post, labels[rows], truth, s) for s in KEPT_SHARES},
            }
    return out


def stronger_model_rows(labels: np.ndarray, probs: np.ndarray, rows: np.ndarray, truth: np.ndarray,
                        votes: np.ndarray) -> list[dict]:
    """The product's scoring on probabilities blended with the crowd's vote shares."""
    from fercurate.signals.label_issues import score_labels
    from fercurate.signals.noise_model import posterior
    wrong = labels[rows] != truth
    out = []
    for a in BLENDS:
        blended = probs.copy()
        blended[rows] = (1 - a) * probs[rows] + a * votes
        quality, _, estimate = score_labels(labels, blended)
        post = posterior(labels, blended, estimate.noise)[rows]
        out.append({"blend": a,
                    "model_accuracy_vs_crowd": share(blended[rows].argmax(1) == truth),
                    "auroc": ranking_metrics(wrong, quality[rows], ())["auroc"],
                    "drop_only_kept_accuracy@0.75": kept_accuracy(quality[rows], ~wrong, 0.75),
                    "best_policy@0.75": best_policy(post, labels[rows], truth, 0.75)["accuracy_vs_crowd_kept"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__, "a launched fercurate dataset (label_issues computed)", RESULTS / "label_noise_ceiling.json")
    args = ap.parse_args(argv)
    votes = read_votes(args.votes)
    from fercurate import schema
    ds = load_launched(args.dataset, (schema.OOF_PROBS,))
    classes = list(ds.info[schema.INFO_CLASSES])
    keys, given, probs = ds.values([schema.SOURCE_KEY, f"{schema.GROUND_TRUTH}.label", schema.OOF_PROBS])
    labels = np.array([classes.index(g) for g in given])
    probs = np.array(probs, dtype=np.float64)
    where = votes.index()
    voted = [(i, where[k]) for i, k in enumerate(keys) if k in where]
    keep = [(i, j) for i, j in voted if votes.crowd_label[j] in classes and votes.usable[j]]
    if not keep:
        sys.exit(f"{args.votes}: no 'relpath' with a 7-class crowd label matches a sample's {schema.SOURCE_KEY}")
    rows = np.array([i for i, _ in keep])
    v = np.array([j for _, j in keep])
    truth = np.array([classes.index(votes.crowd_label[j]) for j in v])
    result = {
        "benchmark": "label_noise_ceiling", "dataset": ds.name, "votes": str(args.votes),
        "command": "python bench/label_noise_ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "images_scored": len(rows), "disputed": int((labels[rows] != truth).sum()),
        "oof_accuracy_vs_crowd": share(probs[rows].argmax(1) == truth),
        "class_noise": class_noise_rows(labels, probs, rows, truth),
        "stronger_model": stronger_model_rows(labels, probs, rows, truth, votes.crowd_distribution(classes)[v]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
