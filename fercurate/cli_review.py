"""The review half of the ``fercurate`` command line: decide fixes, set labels, read the
audit log, freeze versions and export them (the curation half is :mod:`fercurate.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fercurate import policy, schema
from fercurate.errors import FercurateError


def add_review_commands(sub) -> None:
    dataset_help = "dataset name (default: the only fercurate dataset, or the one holding the version)"

    s = sub.add_parser("decide", help="accept, reject or undo proposed fixes from the command line",
                       description="Decide fixes in bulk without the App (the App's review panel does the same "
                                   "one by one). Samples come from --ids or a saved view such as a review queue "
                                   "(review-label-issues, review-ambiguous, review-duplicates, review-nonface, "
                                   "review-quality, review-crops): a queue decides only its own fix kind, as the "
                                   "review panel does, unless --kind says otherwise. Without --kind, accept/reject "
                                   "touch only PENDING fixes; with --kind they change those fixes whatever their "
                                   "status. "
                                   "'accept --auto' accepts only the pending fixes an auto-accept policy passes "
                                   "(each kind's score threshold), as curator auto:<policy>, over the whole dataset "
                                   "unless --ids/--view narrow it. Every decision is logged with the curator and "
                                   "time; 'undo' takes back the latest one.",
                       epilog="examples:\n"
                              "  fercurate decide fer2013 accept --view review-duplicates --kind drop_duplicate\n"
                              "  fercurate decide fer2013 accept --kind relabel --max-score 0.2   # a queue's strongest\n"
                              "  fercurate decide fer2013 reject --view review-nonface --min-score 0.45\n"
                              "  fercurate decide fer2013 accept --auto            # policies: "
                              + ", ".join(f"{n} ({p.description})" for n, p in policy.POLICIES.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("name", help="dataset name")
    s.add_argument("action", choices=["accept", "reject", "undo"], help="what to do")
    s.add_argument("--kind", action="append", metavar="KIND",
                   help=f"fix kind (repeatable): {', '.join(schema.FIX_KINDS)} (default: every kind, or the "
                        "queue's own kind with --view review-...)")
    s.add_argument("--auto", nargs="?", const="default", metavar="POLICY",
                   help="with accept: only the fixes the auto-accept policy passes (default policy: default)")
    s.add_argument("--max-score", type=float, metavar="T",
                   help="only the PENDING fixes of one kind (--kind or a queue --view) with score <= T: the "
                        "strongest evidence (over the whole dataset unless --ids/--view narrow it)")
    s.add_argument("--min-score", type=float, metavar="T",
                   help="only the PENDING fixes of one kind with score >= T: the weakest evidence")
    pick = s.add_mutually_exclusive_group()
    pick.add_argument("--ids", nargs="+", metavar="ID", help="sample ids")
    pick.add_argument("--view", metavar="SAVED_VIEW", help="every sample of a saved view, e.g. review-duplicates")
    s.add_argument("--curator", help="who decides (default: $FERCURATE_CURATOR or the OS user)")
    s.set_defaults(func=cmd_decide)

    s = sub.add_parser("set-label", help="set the curated label of samples by hand (any class)")
    s.add_argument("name", help="dataset name")
    s.add_argument("label", help="the class to set")
    s.add_argument("--ids", nargs="+", metavar="ID", required=True, help="sample ids")
    s.add_argument("--curator", help="who decides (default: $FERCURATE_CURATOR or the OS user)")
    s.set_defaults(func=cmd_set_label)

    s = sub.add_parser("decisions", help="the audit trail of every decision, as CSV",
                       description="Write every decision on dataset NAME (who, when, which fix, from what to "
                                   "what, undos included), oldest first.")
    s.add_argument("name", help="dataset name")
    s.add_argument("--out", type=Path, help="CSV file (default: standard output)")
    s.set_defaults(func=cmd_decisions)

    s = sub.add_parser("freeze", help="freeze the current decisions as an immutable version",
                       description="Write version VERSION: the samples kept, their final labels, crop or original "
                                   "image, the rebalancing policy with its class weights, counts, a content hash; "
                                   "plus a saved view of the same name. Later decisions never change it. Pending "
                                   "fixes are allowed (those samples keep their original label and image) and "
                                   "reported. An existing name is refused.")
    s.add_argument("version", help="version name, e.g. clean_v1")
    s.add_argument("--dataset", help=dataset_help)
    s.add_argument("--policy", choices=["none", "class_weights", "oversample"], default="none",
                   help="rebalancing for training: none, class_weights (per-sample loss weights, effective number "
                        "of samples) or oversample (each class drawn up to the median train class size); "
                        "default %(default)s")
    s.add_argument("--curator", help="who freezes (default: $FERCURATE_CURATOR or the OS user)")
    s.set_defaults(func=cmd_freeze)

    s = sub.add_parser("versions", help="list the frozen versions ('raw' is always there)")
    s.add_argument("--dataset", help=dataset_help)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_versions)

    s = sub.add_parser("export", help="write a version as a manifest for training (JSON lines on stdout)",
                       description="Export version --view: by default JSON lines on standard output, a header line "
                                   "(format version, dataset, version, content hash, classes, split counts, policy "
                                   "and class weights) then one line per sample. The same version always exports "
                                   "to the same bytes. 'raw' is every sample with its original label.",
                       epilog="example: fercurate export --view clean_v1 | training --profile cpu")
    s.add_argument("--view", required=True, metavar="VERSION", help="version name (see 'fercurate versions'), or raw")
    s.add_argument("--dataset", help=dataset_help)
    s.add_argument("--out", type=Path, help="output file (folder for --format folder); default standard output")
    s.add_argument("--format", choices=["jsonl", "csv", "folder"], default="jsonl",
                   help="jsonl (the manifest), csv (the sample table) or folder (<split>/<label>/ images plus "
                        "manifest.jsonl); default %(default)s")
    s.set_defaults(func=cmd_export)


# --- finding the data -----------------------------------------------------------------

def _pick_dataset(name: str | None, version: str | None = None):
    """--dataset, else the only fercurate dataset, else the only one holding ``version``."""
    from fercurate import dataset, schema, versions
    if name:
        return dataset.load(name)
    names = dataset.list_datasets()
    if not names:
        raise FercurateError("no fercurate datasets yet; run 'fercurate launch fer2013'")
    if len(names) > 1 and version and version != schema.RAW_VERSION:
        names = [n for n in names if version in versions.version_names(dataset.load(n))] or names
    if len(names) > 1:
        raise FercurateError(f"several datasets ({', '.join(names)}); pass --dataset NAME")
    return dataset.load(names[0])


def _sample_ids(ds, args: argparse.Namespace) -> list[str]:
    if args.ids:
        return args.ids
    if args.view not in ds.list_saved_views():
        raise FercurateError(f"dataset '{ds.name}' has no saved view '{args.view}'; saved views: "
                             f"{', '.join(ds.list_saved_views()) or 'none'}")
    return ds.load_saved_view(args.view).values("id")


def queue_kinds(args: argparse.Namespace) -> list[str] | None:
    """The fix kinds to decide: --kind, else a review queue's own kind, else every kind (None)."""
    if args.kind:
        return args.kind
    if args.view in schema.QUEUE_KINDS:
        return None if args.action == "undo" else [schema.QUEUE_KINDS[args.view]]
    return None


def cmd_decide(args: argparse.Namespace) -> int:
    from fercurate import dataset, fixes
    ds = dataset.load(args.name)
    if args.auto:
        if args.action != "accept":
            raise FercurateError(f"--auto goes with accept, not {args.action}")
        ids = _sample_ids(ds, args) if (args.ids or args.view) else None
        done = fixes.decide_auto(ds, args.auto, ids, queue_kinds(args))
        pol = policy.get(args.auto)
        print(f"accept --auto ({pol.curator}): {sum(done.values())} fix(es) accepted: "
              + ", ".join(f"{k} {n}" for k, n in done.items()))
        print(f"review or undo them: fercurate decisions {ds.name}  |  fercurate decide {ds.name} undo --ids ...")
        return 0
    if args.max_score is not None or args.min_score is not None:
        return _decide_by_score(ds, args)
    if not (args.ids or args.view):
        raise FercurateError("say which samples: --ids ID... or --view SAVED_VIEW (or accept --auto, "
                             "or --kind KIND --max-score T)")
    ids = _sample_ids(ds, args)
    kinds = queue_kinds(args)
    if args.action == "undo":
        n = fixes.undo(ds, ids, kinds, args.curator)
    else:
        n = fixes.decide(ds, ids, args.action, kinds, args.curator, only_pending=not args.kind)
    print(f"{args.action}: {n} fix(es) changed on {len(ids)} sample(s)"
          + (f" ({', '.join(kinds)})" if kinds else ""))
    return 0


def _decide_by_score(ds, args: argparse.Namespace) -> int:
    """accept/reject the pending fixes of one kind whose score is within --max-score/--min-score."""
    from fercurate import fixes, queues
    if args.action == "undo":
        raise FercurateError("--max-score/--min-score go with accept or reject, not undo")
    kinds = queue_kinds(args)
    if not kinds or len(kinds) != 1:
        raise FercurateError("--max-score/--min-score decide one fix kind: add --kind KIND "
                             f"({', '.join(schema.FIX_KINDS)}) or --view review-...")
    fixes.check_kinds(kinds)
    view = ds.select(_sample_ids(ds, args)) if (args.ids or args.view) else ds
    ids = queues.pending_by_score(view, kinds[0], at_most=args.max_score, at_least=args.min_score)
    n = fixes.decide(ds, ids, args.action, kinds, args.curator) if ids else 0
    bounds = " and ".join(b for b in (f"score <= {args.max_score:g}" if args.max_score is not None else "",
                                      f"score >= {args.min_score:g}" if args.min_score is not None else "") if b)
    print(f"{args.action}: {n} pending {kinds[0]} fix(es) with {bounds} changed")
    return 0


def cmd_set_label(args: argparse.Namespace) -> int:
    from fercurate import dataset, fixes
    ds = dataset.load(args.name)
    n = fixes.set_label(ds, args.ids, args.label, args.curator)
    print(f"set-label: {n} sample(s) now labelled '{args.label}'")
    return 0


def cmd_decisions(args: argparse.Namespace) -> int:
    from fercurate import dataset, decisions
    ds = dataset.load(args.name)
    n = decisions.export_csv(ds, args.out or sys.stdout)
    if args.out:
        print(f"wrote {n} decision record(s) to {args.out}")
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    from fercurate import versions
    ds = _pick_dataset(args.dataset)
    header = versions.freeze(ds, args.version, args.policy, args.curator)
    counts = {s: sum(c.values()) for s, c in header["split_counts"].items()}
    d = header["decisions"]
    print(f"froze '{args.version}' of '{ds.name}': {header['num_samples']} samples "
          f"({', '.join(f'{s} {n}' for s, n in counts.items())}), {d['dropped']} dropped, {d['relabelled']} "
          f"relabelled, {d['cropped']} cropped, policy {header['policy']['name']}, {header['content_hash'][:19]}…")
    if d["pending_left"]:
        print(f"note: {d['pending_left']} fix(es) were still pending; those samples keep their original label and image")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from fercurate import versions
    ds = _pick_dataset(args.dataset)
    rows = versions.list_versions(ds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"versions of '{ds.name}':")
    for v in rows:
        if v["name"] == "raw":
            print(f"  {'raw':<12} {v['num_samples']:>7} samples  every sample, original labels (not frozen)")
        else:
            print(f"  {v['name']:<12} {v['num_samples']:>7} samples  frozen {v['frozen_at'][:19]} by {v['curator']}, "
                  f"policy {v['policy']}, {v['pending_left']} pending left, {v['content_hash'][:19]}…")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fercurate import export
    ds = _pick_dataset(args.dataset, args.view)
    if args.format == "folder" and not args.out:
        raise FercurateError("--format folder needs --out DIR")
    header = export.export(ds, args.view, args.out or sys.stdout.buffer, args.format)
    if args.out:
        print(f"exported '{args.view}' of '{ds.name}' ({header['num_samples']} samples) to {args.out}", file=sys.stderr)
    return 0
