"""How right fercurate's proposals are, judged on crowd votes (not on synthetic flips).

    python bench/curation_quality.py fer2013 ../shared/data/ferplus-val/votes.csv

Reads a dataset whose signals are computed and proposals made (``fercurate launch``),
and the crowd votes of some of its images (for FER2013: the FER+ votes of the val split).
On the images with votes it reports:

* the label-issue ranking (the signal's label quality, and each cleanlab scoring method
  and the noise-aware posterior recomputed from the stored out-of-fold probabilities) against "given label != crowd
  plurality": AUROC, average precision, precision@k (k also scaled to the train split's
  size, so that precision@2000 on FER2013's train reads as precision@250 on val);
* relabel proposals whose target is the crowd label (overall, top 100 / 500 by score);
  drop_ambiguous proposals whose given label the crowd disputes;
* unusable-image flags (``is_unusable``, and faces' ``is_non_face`` alone) against the crowd's
  unusable images (dropped, or >= 5 of 10 NF votes);
* the labels after accepting every proposal, and after each auto-accept policy:
  accuracy against the crowd on the images kept, and the share kept;
* soft labels against the crowd's vote distribution: the one-hot given label, the
  out-of-fold probabilities (the manifest's ``soft_label``) and the noise posterior at two
  evidence powers, each alone and mixed half-half with the given label as
  ``training --soft-labels`` does: cross-entropy of the votes, agreement of the argmax with
  the crowd plurality.

Decisions are simulated in memory with the same rules the product applies
(``fixes.curated``, ``policy.AutoPolicy.accepts``); the dataset is not changed.
Writes ``bench/results/curation_quality.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crowd import bench_parser, load_launched, read_votes, ranking_metrics, share  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def accept_all(kind: str, score) -> bool:
    return True


def simulate(cols: dict, rows: np.ndarray, accepts) -> tuple[list[str | None], np.ndarray]:
    """Curated label and drop flag of ``rows`` if every pending fix that ``accepts(kind,
    score)`` passes were accepted (decided fixes keep their status)."""
    from fercurate import fixes, schema
    labels, dropped = [], []
    for i in rows:
        docs = {}
        for kind in schema.FIX_KINDS:
            d = cols["fixes"][kind][i]
            if d is not None and d[schema.FIX_STATUS] == schema.PENDING and accepts(kind, d.get(schema.FIX_SCORE)):
                d = {**d, schema.FIX_STATUS: schema.ACCEPTED}
            docs[kind] = d
        label, drop = fixes.curated(docs, cols["given"][i])
        labels.append(label)
        dropped.append(drop)
    return labels, np.array(dropped, dtype=bool)


def curated_accuracy(cols, rows, crowd, has_crowd, accepts) -> dict:
    labels, dropped = simulate(cols, rows, accepts)
    kept = ~dropped
    ok = kept & has_crowd
    right = np.array([labels[j] == crowd[j] for j in range(len(rows))])
    from fercurate import schema
    label_drop = np.array([any((cols["fixes"][k][i] or {}).get(schema.FIX_STATUS) == schema.ACCEPTED
                               or ((cols["fixes"][k][i] or {}).get(schema.FIX_STATUS) == schema.PENDING
                                   and accepts(k, (cols["fixes"][k][i] or {}).get(schema.FIX_SCORE)))
                               for k in (schema.DROP_AMBIGUOUS,)) for i in rows])
    return {"kept": int(kept.sum()), "kept_share": share(kept),
            "dropped_as_ambiguous": int(label_drop.sum()),
            "relabelled": int(sum(1 for j, i in enumerate(rows) if kept[j] and labels[j] != cols["given"][i])),
            "accuracy_vs_crowd_kept": share(right[ok]),
            "accuracy_vs_crowd_kept_incl_dropped_as_wrong": None if not has_crowd.sum() else
            round(float((right & ok).sum() / has_crowd.sum()), 4)}


def soft_label_quality(candidates: dict[str, np.ndarray], hard: np.ndarray, crowd_dist: np.ndarray,
                       crowd_idx: np.ndarray, mix: float = 0.5) -> dict:
    """How close each candidate soft label is to the crowd's votes, alone and mixed with the
    hard label: mean cross-entropy of the vote shares (lower is better) and argmax agreement."""
    out = {}
    for name, soft in candidates.items():
        for tag, target in ((name, soft), (f"{name}_mixed_{mix:g}", (1 - mix) * hard + mix * soft)):
            if tag.startswith("given_label_mixed"):
                continue
            ce = -(crowd_dist * np.log(np.clip(target, 1e-4, None))).sum(1)
            out[tag] = {"crowd_cross_entropy": round(float(ce.mean()), 4),
                        "argmax_is_crowd": share(target.argmax(1) == crowd_idx)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__, "fercurate dataset name (signals computed, fixes proposed)", RESULTS / "curation_quality.json")
    args = ap.parse_args(argv)

    votes = read_votes(args.votes)
    from cleanlab.rank import get_label_quality_scores
    from fercurate import fixes, policy, schema
    from fercurate.signals import noise_model
    ds = load_launched(args.dataset, (schema.OOF_PROBS, schema.LABEL_QUALITY, fixes.FIX_FIELDS[schema.RELABEL]))
    classes = list(ds.info[schema.INFO_CLASSES])
    keys, splits, given, probs, quality = ds.values(
        [schema.SOURCE_KEY, schema.SPLIT, f"{schema.GROUND_TRUTH}.label", schema.OOF_PROBS, schema.LABEL_QUALITY])
    unusable_flags = {f: ds.values(f) for f in (schema.IS_UNUSABLE, schema.IS_NON_FACE) if ds.has_sample_field(f)}
    reasons_col = ds.values(schema.USABILITY_REASONS) if ds.has_sample_field(schema.USABILITY_REASONS) else None
    cols = {"given": given, "fixes": {k: [d.to_dict() if d is not None else None for d in ds.values(f)]
                                      for k, f in fixes.FIX_FIELDS.items() if ds.has_sample_field(f)}}
    for k in schema.FIX_KINDS:
        cols["fixes"].setdefault(k, [None] * len(given))
    where = votes.index()
    rows = np.array([i for i, k in enumerate(keys) if k in where])
    if not len(rows):
        sys.exit(f"{args.votes}: no 'relpath' matches a sample's {schema.SOURCE_KEY} in '{ds.name}'")
    v = np.array([where[keys[i]] for i in rows])
    crowd = [votes.crowd_label[j] for j in v]
    has_crowd = np.array([c in classes for c in crowd]) & votes.usable[v]
    lab = np.array([classes.index(given[i]) for i in rows])
    pr = np.array([probs[i] for i in rows], dtype=float)
    wrong = np.array([given[i] != c for i, c in zip(rows, crowd)])
    n_train = sum(1 for s in splits if s == schema.TRAIN)
    scale = len(rows) / max(1, n_train)
    ks = tuple(sorted({100, 250, 500, 1000, max(1, round(2000 * scale))}))

    m = has_crowd
    ranking = {"signal": ranking_metrics(wrong[m], np.array([quality[i] for i in rows])[m], ks)}
    for method in QUALITY_METHODS:
        ranking[method] = ranking_metrics(wrong[m], get_label_quality_scores(lab[m], pr[m], method=method), ks)
    # the noise-aware posterior needs the noise matrix of the whole data set, not of the voted rows
    all_labels = np.array([classes.index(g) for g in given])
    posterior_quality = noise_model.label_quality(all_labels, np.array(probs, dtype=float))
    ranking[noise_model.NOISE_POSTERIOR] = ranking_metrics(wrong[m], posterior_quality[rows][m], ks)
    untempered = noise_model.label_quality(all_labels, np.array(probs, dtype=float), power=1.0)
    ranking[f"{noise_model.NOISE_POSTERIOR}_untempered"] = ranking_metrics(wrong[m], untempered[rows][m], ks)
    disputed_per_class = {c: share(wrong[m & (lab == k)]) for k, c in enumerate(classes)}
    argmax = pr.argmax(1)
    oof = {"accuracy_vs_given": share((argmax == lab)[m]),
           "accuracy_vs_crowd": share(np.array([classes[a] == c for a, c in zip(argmax, crowd)])[m])}

    def fix_rows(kind):
        docs = cols["fixes"][kind]
        sel = [j for j, i in enumerate(rows) if docs[i] is not None and has_crowd[j]]
        return sorted(sel, key=lambda j: docs[rows[j]].get(schema.FIX_SCORE) or 0.0)

    relabel = fix_rows(schema.RELABEL)
    hit = np.array([cols["fixes"][schema.RELABEL][rows[j]][schema.FIX_TARGET] == crowd[j] for j in relabel])
    relabels = {"proposed": len(relabel), "target_is_crowd": share(hit),
                "target_is_crowd_top100": share(hit[:100]), "target_is_crowd_top500": share(hit[:500]),
                "given_was_crowd": share(np.array([not wrong[j] for j in relabel]))}
    amb = fix_rows(schema.DROP_AMBIGUOUS)
    ambiguous = {"proposed": len(amb), "given_disputed_by_crowd": share(np.array([wrong[j] for j in amb])),
                 "given_disputed_top500": share(np.array([wrong[j] for j in amb[:500]]))}
    unusable = ~votes.usable[v]
    # the usability signal's flag, and faces' is_non_face alone for comparison
    not_a_face: dict = {"unusable": int(unusable.sum())}
    for field, column in unusable_flags.items():
        flag = np.array([bool(column[i]) for i in rows])
        not_a_face[field] = {"flagged": int(flag.sum()), "precision": share(unusable[flag]),
                             "recall": share(flag[unusable])}
    if reasons_col is not None:
        for reason in schema.USABILITY_REASON_NAMES:
            flag = np.array([reason in (reasons_col[i] or []) for i in rows])
            not_a_face.setdefault("by_reason", {})[reason] = {"flagged": int(flag.sum()),
                                                              "unusable": int((flag & unusable).sum())}
    if not unusable_flags:
        not_a_face["note"] = "faces / usability signals not computed"

    dist = votes.crowd_distribution(classes)[v]
    sm = m & (dist.sum(1) > 0)
    hard = np.eye(len(classes))[lab]
    all_probs = np.array(probs, dtype=float)
    candidates = {"given_label": hard, "oof_probs": pr}
    for power in (0.5, 1.0):
        candidates[f"posterior_power_{power:g}"] = noise_model.posterior(all_labels, all_probs, power=power)[rows]
    soft_labels = soft_label_quality({k: c[sm] for k, c in candidates.items()}, hard[sm], dist[sm],
                                     np.array([classes.index(c) if c in classes else -1 for c in crowd])[sm])

    raw_right = np.array([given[i] == c for i, c in zip(rows, crowd)])
    result = {
        "benchmark": "curation_quality", "dataset": ds.name, "votes": str(args.votes),
        "command": "python bench/curation_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "images_with_votes": int(len(rows)), "with_7class_crowd_label": int(has_crowd.sum()),
        "label_issues_params": (ds.info.get(schema.INFO_SIGNALS, {}).get("label_issues") or {}).get("params"),
        "label_issues_seconds": (ds.info.get(schema.INFO_SIGNALS, {}).get("label_issues") or {}).get("seconds"),
        "precision_at_k_scaled_from_2000_on_train": max(1, round(2000 * scale)),
        "out_of_fold_model": oof, "disputed_share_per_given_label": disputed_per_class, "ranking": ranking, "relabel": relabels, "drop_ambiguous": ambiguous,
        "not_a_face": not_a_face, "soft_labels": soft_labels,
        "labels": {"raw": {"kept": int(len(rows)), "kept_share": 1.0, "accuracy_vs_crowd_kept": share(raw_right[m])},
                   "accept_every_proposal": curated_accuracy(cols, rows, crowd, has_crowd, accept_all),
                   **{f"auto_{pol.name}": curated_accuracy(cols, rows, crowd, has_crowd, pol.accepts)
                      for pol in policy.POLICIES.values()},
                   "auto_policies": {pol.name: pol.max_score for pol in policy.POLICIES.values()}},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ranking", "relabel", "drop_ambiguous", "not_a_face", "labels",
                                             "soft_labels")},
                     indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
