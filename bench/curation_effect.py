"""The curation effect: the same small reference CNN trained on raw vs curated labels,
scored against crowd labels. The product's headline number.

    python bench/curation_effect.py fer2013 ../shared/data/ferplus-val/votes.csv --threads 2

The reference CNN (4 stages of two 3x3 conv + BN + ReLU and a 2x2 max-pool, 24-48-96-192
channels, global average pool, dropout 0.3, linear; 8 epochs, batch 128, AdamW lr 2e-3,
wd 1e-4, one-cycle, label smoothing 0.1, horizontal flips, flip TTA, seed 0; ~10 min on
2 cores) is trained on the train split of each arm:

* ``raw``: every train image with its given label;
* ``accept_all``: every proposal accepted (relabels applied, every drop dropped);
* ``auto_<policy>``: what ``fercurate decide NAME accept --auto <policy>`` would accept;
* ``custom:NAME=kind:max_score,...``: any other thresholds (to choose a policy);
* ``ARM@FIELD=VALUE,...``: ARM with the label proposals re-made in memory under another
  :class:`fercurate.proposals.LabelRule` (e.g. ``accept_all@dispute_below=0.6``: labels
  less likely right than 0.6 are disputed too), to choose the rule's defaults;
* ``soft:ARM``: ARM trained on soft targets, ``(1 - W) * onehot(label) + W * soft_label``
  with the out-of-fold distribution a version carries (``training --soft-labels W``;
  ``--soft-weight``, default 0.5).

Each model is scored on the val images with crowd votes, against the crowd plurality and
against FER2013's own labels, and on the test split against FER2013's labels. FER2013's
test labels are as noisy as its train labels: a model trained on cleaner labels can lose
points against them while agreeing more with people; both are reported.

Decisions are simulated in memory with the product's own rules (the dataset is not
changed). Finished arms are cached in ``--work`` so a re-run only trains what is missing.
Writes ``bench/results/curation_effect.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crowd import read_votes, share  # noqa: E402
from curation_quality import accept_all, simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def reference_params(epochs: int = 8, seed: int = 0):
    from fercurate.signals.classifier import ClassifierParams
    return ClassifierParams(width=24, convs=2, epochs=epochs, min_steps=0, batch_size=128, lr=2e-3,
                            weight_decay=1e-4, label_smoothing=0.1, max_shift=0, hflip=True, seed=seed)


def parse_custom(spec: str):
    """'NAME=relabel:0.3,drop_ambiguous:0.1' -> (name, accepts(kind, score))."""
    from fercurate import schema
    name, _, body = spec.partition("=")
    limits = {}
    for part in filter(None, body.split(",")):
        kind, _, thr = part.partition(":")
        if kind not in schema.FIX_KINDS:
            sys.exit(f"--arm {spec}: unknown fix kind '{kind}'; choose from {', '.join(schema.FIX_KINDS)}")
        limits[kind] = float(thr)
    return name, limits, (lambda k, s: k in limits and s is not None and s <= limits[k])


def parse_rule(spec: str):
    """'dispute_below=0.6,relabel_min_margin=0.2' -> a LabelRule with those fields."""
    from dataclasses import fields, replace
    from fercurate.proposals import LABEL_RULE
    known = {f.name for f in fields(LABEL_RULE)}
    values = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        if key not in known:
            sys.exit(f"--arm ...@{spec}: unknown label-rule field '{key}'; choose from {', '.join(sorted(known))}")
        values[key] = float(value)
    return replace(LABEL_RULE, **values)


def label_fix_columns(ds, rule) -> dict[str, list]:
    """The relabel and drop_ambiguous fix documents of every sample under ``rule``, as the
    dataset would hold them after ``fixes.propose`` (decided fixes stay as they are)."""
    from fercurate import fixes, schema
    from fercurate.proposals import label_fixes
    out = {}
    for kind in (schema.RELABEL, schema.DROP_AMBIGUOUS):
        field = fixes.FIX_FIELDS[kind]
        current = ds.values(field) if ds.has_sample_field(field) else [None] * len(ds)
        out[kind] = [d.to_dict() if d is not None else None
                     for d in fixes.refreshed(kind, current, label_fixes(ds, kind, rule))]
    return out


def write_results(args, argv, dataset_name: str, params, scored: int, results: dict) -> None:
    out = {"benchmark": "curation_effect", "dataset": dataset_name, "votes": str(args.votes),
           "command": "python bench/curation_effect.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "reference_cnn": dict(vars(params)), "threads": args.threads,
           "val_images_scored_vs_crowd": scored, "arms": results}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if previous.get("dataset") == dataset_name and previous.get("reference_cnn") == out["reference_cnn"]:
        out["arms"] = {**previous.get("arms", {}), **results}  # arms measured by earlier runs stay
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("votes", type=Path)
    ap.add_argument("--arm", action="append", default=None,
                    help="raw, accept_all, auto:<policy> or custom:NAME=kind:max_score,..., any of them as "
                         "soft:ARM (repeatable; default raw, accept_all, auto:default)")
    ap.add_argument("--soft-weight", type=float, default=0.5, help="W of the soft: arms (default 0.5)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0,
                    help="the reference CNN's seed (default 0); another seed writes curation_effect-seedN.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fercurate-curation-effect"))
    ap.add_argument("--out", type=Path, default=None, help="default bench/results/curation_effect[-seedN].json")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = RESULTS / ("curation_effect.json" if args.seed == 0 else f"curation_effect-seed{args.seed}.json")
    os.environ.setdefault("TQDM_DISABLE", "1")

    votes = read_votes(args.votes)
    import torch
    torch.set_num_threads(args.threads)
    import fercurate  # noqa: F401
    from fercurate import dataset as fdataset, fixes, policy, schema
    from fercurate.errors import FercurateError
    from fercurate.signals.classifier import load_images, predict, train_model
    try:
        ds = fdataset.load(args.dataset)
    except FercurateError as e:
        sys.exit(str(e))
    classes = list(ds.info[schema.INFO_CLASSES])
    keys, splits, given, paths = ds.values([schema.SOURCE_KEY, schema.SPLIT, f"{schema.GROUND_TRUTH}.label",
                                            "filepath"])
    cols = {"given": given, "fixes": {k: ([d.to_dict() if d is not None else None for d in ds.values(f)]
                                          if ds.has_sample_field(f) else [None] * len(given))
                                      for k, f in fixes.FIX_FIELDS.items()}}
    splits = np.array(splits)
    train = np.flatnonzero(splits == schema.TRAIN)
    val = np.flatnonzero(splits == schema.VAL)
    test = np.flatnonzero(splits == schema.TEST)
    where = votes.index()
    crowd = np.array([votes.crowd_label[where[keys[i]]] if keys[i] in where else "" for i in val])
    usable = np.array([bool(votes.usable[where[keys[i]]]) if keys[i] in where else False for i in val])
    scored = np.isin(crowd, classes) & usable
    if not scored.any():
        sys.exit(f"{args.votes}: no val sample of '{ds.name}' has a crowd label")

    arms = []   # (name, thresholds, accepts, soft, label rule or None, the --arm given)
    for given_spec in args.arm or ["raw", "accept_all", "auto:default"]:
        soft = given_spec.startswith("soft:")
        spec = given_spec[5:] if soft else given_spec
        spec, _, rule_spec = spec.partition("@")
        if soft and not ds.has_sample_field(schema.OOF_PROBS):
            sys.exit(f"--arm soft:{spec}: dataset '{ds.name}' has no '{schema.OOF_PROBS}'; "
                     "run `fercurate compute DATASET label_issues` first")
        if spec == "raw":
            name, limits, accepts = "raw", None, None
        elif spec == "accept_all":
            name, limits, accepts = "accept_all", None, accept_all
        elif spec.startswith("auto:"):
            pol = policy.get(spec[5:])
            name, limits, accepts = f"auto_{pol.name}", pol.max_score, pol.accepts
        elif spec.startswith("custom:"):
            name, limits, accepts = parse_custom(spec[7:])
        else:
            sys.exit(f"--arm {spec}: choose raw, accept_all, auto:<policy> or custom:NAME=kind:max_score,...")
        rule = parse_rule(rule_spec) if rule_spec else None
        arms.append((f"{name}@{rule_spec}" if rule_spec else name, limits, accepts, soft, rule, given_spec))

    print(f"reading {len(paths)} images ...", flush=True)
    images = load_images(paths, 48)
    label_idx = {c: k for k, c in enumerate(classes)}
    args.work.mkdir(parents=True, exist_ok=True)
    params = reference_params(args.epochs, args.seed)
    results = {}
    soft_labels = ds.values(schema.OOF_PROBS) \
        if ds.has_sample_field(schema.OOF_PROBS) else None
    for name, limits, accepts, soft, rule, given_spec in arms:
        name = f"soft_{name}" if soft else name
        arm_cols = {**cols, "fixes": {**cols["fixes"], **label_fix_columns(ds, rule)}} if rule else cols
        if accepts is None:
            rows, labels = train, [given[i] for i in train]
        else:
            labels_all, dropped = simulate(arm_cols, train, accepts)
            rows = train[~dropped]
            labels = [lab for lab, d in zip(labels_all, dropped) if not d]
        y = np.array([label_idx[lab] for lab in labels])
        targets = None
        if soft:   # a sample the signal did not score keeps its hard label
            hard = np.eye(len(classes))[y]
            soft_rows = np.array([soft_labels[i] if soft_labels[i] is not None else hard[k]
                                  for k, i in enumerate(rows)], dtype=np.float64)
            targets = (1 - args.soft_weight) * hard + args.soft_weight * soft_rows
        digest = hashlib.sha1(np.asarray(rows).tobytes() + y.tobytes()
                              + (b"" if targets is None else targets.round(4).tobytes())).hexdigest()[:12]
        # keyed on the training set, not the arm's name: arms with the same images and labels share a model
        cache = args.work / f"{ds.name}-{args.epochs}ep-seed{args.seed}-{digest}.npz"
        t0 = time.perf_counter()
        if cache.is_file():
            z = np.load(cache)
            pv, pt, seconds = z["val"], z["test"], float(z["seconds"])
        else:
            print(f"{name}: training the reference CNN on {len(rows)} train images ...", flush=True)
            model = train_model(images[rows], y, len(classes), params, seed=params.seed, desc=name, targets=targets)
            pv, pt = predict(model, images[val], params)[0], predict(model, images[test], params)[0]
            seconds = time.perf_counter() - t0
            np.savez(cache, val=pv, test=pt, seconds=seconds)
        val_pred = np.array(classes)[pv.argmax(1)]
        test_pred = np.array(classes)[pt.argmax(1)]
        changed = sum(1 for i, lab in zip(rows, labels) if lab != given[i])
        val_labels = None
        if accepts is not None:   # what the same policy does to the val labels people voted on
            v_labels, v_dropped = simulate(arm_cols, val, accepts)
            v_labels = np.array(v_labels, dtype=object)
            kept, relabelled = ~v_dropped & scored, ~v_dropped & scored & (v_labels != np.array(given, dtype=object)[val])
            val_labels = {"kept_share": share(kept[scored]), "accuracy_vs_crowd_kept": share((v_labels == crowd)[kept]),
                          "relabelled": int(relabelled.sum()),
                          "relabel_target_is_crowd": share((v_labels == crowd)[relabelled]) if relabelled.any() else None}
        results[name] = {
            "val_labels_if_curated": val_labels,
            "thresholds": limits, "soft_weight": args.soft_weight if soft else None,
            "train_images": int(len(rows)), "train_share": share(np.isin(train, rows)),
            "train_labels_changed": int(changed),
            "val_accuracy_vs_crowd": share((val_pred == crowd)[scored]),
            "val_accuracy_vs_fer2013": share(val_pred == np.array([given[i] for i in val])),
            "test_accuracy_vs_fer2013": share(test_pred == np.array([given[i] for i in test])),
            "train_seconds": round(seconds, 1),
            "command": "python bench/curation_effect.py " + " ".join(
                [str(args.dataset), str(args.votes)] + (["--epochs", str(args.epochs)] if args.epochs != 8 else [])
                + (["--seed", str(args.seed)] if args.seed else [])
                + ["--threads", str(args.threads), "--arm", given_spec]),
            "label_rule": None if rule is None else dict(vars(rule)),
        }
        print(f"{name}: {json.dumps(results[name])}", flush=True)
        write_results(args, argv, ds.name, params, int(scored.sum()), results)  # after each arm: a kill keeps it

    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
