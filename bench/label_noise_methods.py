"""Which label-noise recipe finds the labels people dispute: methods compared on crowd votes.

    python bench/label_noise_methods.py fer2013 ../shared/data/ferplus-val/votes.csv \\
        --method r1 --method r2 [--cache DIR]

Reads a launched dataset (images, given labels, duplicate groups), trains the
``label_issues`` cross-validation with each named recipe (:data:`METHODS`) from plain
arrays, with the signal's own code (``crossval``, ``noise_model``, ``proposals``), and
scores the result on the images with crowd votes (FER2013: the val split):

* the ranking (noise posterior) against "given label != crowd plurality": AUROC, AP,
  precision@k;
* the out-of-fold model's argmax against the crowd;
* what accepting every label proposal does to those images: the share kept and the
  label accuracy against the crowd on them (only label fixes; duplicates, non-faces and
  low-quality drops are ``curation_quality.py``'s);
* the accuracy of the labels kept when the lowest-quality labels are dropped down to a
  fixed share kept (what the ranking is worth, whatever the number of flags).

The votes choose between recipes; they are never an input of one. Folds are cached per
recipe under ``--cache`` (resumable). Writes ``bench/results/label_noise_methods.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crowd import most_trusted, ranking_metrics, read_votes, share  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KEPT_SHARES = (0.9, 0.8, 0.75, 0.7, 0.65)

#: recipe name -> classifier overrides of round 1, and of round 2 (None = one round)
METHODS: dict[str, dict] = {
    "r1": {"round1": {}},
    "r2": {"round1": {}, "round2": {}},
    "r1_w24": {"round1": {"width": 24}},
    "r1_w32": {"round1": {"width": 32}},
    "r1_w32_e8": {"round1": {"width": 32, "epochs": 8}},
    "r1_w20": {"round1": {"width": 20}},
    "r1_w24_rep1": {"round1": {"width": 24, "repeats": 1}},
    "r2_w24": {"round1": {"width": 24}, "round2": {"width": 24}},
    "r1_rep1": {"round1": {"repeats": 1}},
    "r1_rep3": {"round1": {"repeats": 3}},
    "r2_rep1": {"round1": {"repeats": 1}, "round2": {"repeats": 1}},
    "r2_rep1_r2rep2": {"round1": {"repeats": 1}, "round2": {}},
    "r1_k4": {"round1": {"folds": 4, "repeats": 1}},
    "r1_e10": {"round1": {"epochs": 10}},
}


def run_method(name: str, images, labels, groups, classes, cache: Path, workers: int) -> dict:
    from fercurate.signals.base import ChunkStore
    from fercurate.signals.classifier import ClassifierParams
    from fercurate.signals.crossval import cross_val_probs
    from fercurate.signals.label_issues import score_labels
    spec = METHODS[name]
    out = {}
    t0 = time.perf_counter()
    p1 = dataclasses.replace(ClassifierParams(), **spec["round1"])
    tag1 = "-".join(f"{k}{v}" for k, v in sorted(spec["round1"].items())) or "default"
    cv = cross_val_probs(images, labels, len(classes), p1, store=ChunkStore(cache / f"r1-{tag1}"),
                         groups=groups, workers=workers)
    out["round1"] = cv.pred_probs
    if "round2" in spec:
        _, is_issue, _ = score_labels(labels, cv.pred_probs)
        p2 = dataclasses.replace(ClassifierParams(), **spec["round2"])
        tag2 = "-".join(f"{k}{v}" for k, v in sorted(spec["round2"].items())) or "default"
        cv2 = cross_val_probs(images, labels, len(classes), p2, store=ChunkStore(cache / f"r2-{tag1}-{tag2}"),
                              groups=groups, workers=workers, trainable=~is_issue)
        out["round2"] = cv2.pred_probs
        out["rounds_mean"] = (cv.pred_probs + cv2.pred_probs) / 2
    out["seconds"] = time.perf_counter() - t0
    return out


def evaluate(probs: np.ndarray, labels: np.ndarray, classes: list[str], rows: np.ndarray, crowd: list[str],
             has_crowd: np.ndarray, suggest: np.ndarray | None = None) -> dict:
    """``suggest``: the probabilities a flagged label's fix (relabel or drop) is chosen from,
    when not ``probs`` (which rank and flag)."""
    suggest = probs if suggest is None else suggest
    from fercurate import schema
    from fercurate.proposals import label_fix
    from fercurate.signals.label_issues import score_labels
    quality, is_issue, _ = score_labels(labels, probs)
    m = has_crowd
    lab = labels[rows]
    wrong = np.array([classes[g] != c for g, c in zip(lab, crowd)])
    ranking = ranking_metrics(wrong[m], quality[rows][m], (100, 250, 500, 1000))
    from fercurate.signals.noise_model import label_quality
    untempered = ranking_metrics(wrong[m], label_quality(labels, probs, power=1.0)[rows][m], (250,))
    argmax = probs[rows].argmax(1)
    curated, dropped = [], []
    for j, i in enumerate(rows):
        fix = label_fix(classes[labels[i]], suggest[i].tolist(), classes, bool(is_issue[i]), float(quality[i]))
        if fix is None:
            curated.append(classes[labels[i]]); dropped.append(False)
        elif fix[0] == schema.RELABEL:
            curated.append(fix[1].evidence[schema.FIX_TARGET]); dropped.append(False)
        else:
            curated.append(None); dropped.append(True)
    dropped = np.array(dropped)
    right = np.array([c == t for c, t in zip(curated, crowd)])
    kept = ~dropped & m
    relabelled = np.array([c is not None and c != classes[g] for c, g in zip(curated, lab)])
    q = quality[rows][m]
    raw_right = ~wrong[m]
    by_share = {}
    for s in KEPT_SHARES:
        by_share[f"{s:g}"] = share(raw_right[most_trusted(q, s)])
    return {
        "ranking": ranking,
        "ranking_untempered": {k: untempered[k] for k in ("auroc", "average_precision", "precision@250")},
        "oof_accuracy_vs_crowd": share((np.array([classes[a] for a in argmax]) == np.array(crowd))[m]),
        "oof_accuracy_vs_given": share((argmax == lab)[m]),
        "flagged_share_all": share(is_issue),
        "accept_all": {"kept_share": share(kept[m]), "accuracy_vs_crowd_kept": share(right[kept]),
                       "relabelled": int((relabelled & m).sum()),
                       "relabel_target_is_crowd": share(right[relabelled & m])},
        "raw_accuracy_when_keeping": by_share,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="a launched fercurate dataset (duplicates computed)")
    ap.add_argument("votes", type=Path, help="crowd votes CSV (bench/crowd.py)")
    ap.add_argument("--method", action="append", choices=sorted(METHODS), help="recipe(s) to run (repeatable)")
    ap.add_argument("--cache", type=Path, default=Path("runs/label-noise-methods"), help="fold cache folder")
    ap.add_argument("--workers", type=int, default=2, help="training processes (one thread each)")
    ap.add_argument("--out", type=Path, default=RESULTS / "label_noise_methods.json")
    args = ap.parse_args(argv)
    votes = read_votes(args.votes)
    import torch
    import fercurate  # noqa: F401
    from fercurate import dataset as fdataset, schema
    from fercurate.signals.base import SampleTable
    from fercurate.signals.classifier import load_images
    from fercurate.signals.label_issues import duplicate_groups, label_indices
    torch.set_num_threads(args.workers)
    ds = fdataset.load(args.dataset)
    table = SampleTable.load(ds)
    labels = label_indices(table)
    classes = list(table.classes)
    groups = duplicate_groups(ds, table)
    images = load_images(table.filepaths, 48)
    keys = ds.values(schema.SOURCE_KEY)
    where = votes.index()
    rows = np.array([i for i, k in enumerate(keys) if k in where])
    v = np.array([where[keys[i]] for i in rows])
    crowd = [votes.crowd_label[j] for j in v]
    has_crowd = np.array([c in classes for c in crowd]) & votes.usable[v]
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = previous.get("methods", {})
    command = "python bench/label_noise_methods.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in args.method or ["r1"]:
        got = run_method(name, images, labels, groups, classes, args.cache, args.workers)
        measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # the file pools methods of several invocations: each entry names the one that measured it
        entry = {"spec": METHODS[name], "seconds": round(got["seconds"], 1), "command": command,
                 "measured_at": measured_at}
        for rnd in ("round1", "round2", "rounds_mean"):
            if rnd in got:
                entry[rnd] = evaluate(got[rnd], labels, classes, rows, crowd, has_crowd)
        if "round2" in got:  # round 1 ranks and flags, round 2 chooses each flag's fix
            entry["rank_round1_fix_round2"] = evaluate(got["round1"], labels, classes, rows, crowd, has_crowd,
                                                       suggest=got["round2"])
        results[name] = entry
        print(json.dumps({name: entry}, indent=1), flush=True)
        out = {"benchmark": "label_noise_methods", "dataset": ds.name, "votes": str(args.votes),
               "command": command, "measured_at": measured_at,
               "images_scored": int(has_crowd.sum()), "methods": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
