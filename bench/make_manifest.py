"""Write a fercurate manifest for a FER2013 Kaggle folder without FiftyOne (for training benchmarks).

train/ -> train, test/ -> test; val is, by default, FER2013's own PublicTest (the test/ files named
``PublicTest_*``, which is what `fercurate ingest` does and what the crowd votes cover), test the
``PrivateTest_*`` files. ``--val-fraction F`` instead carves a seeded stratified slice of train as val
(for a tree without those names). ``--test-all`` puts every test/ file in test (an eval manifest for a
curated run: bench/training_seeds.py scores its PublicTest rows against the crowd, its PrivateTest rows
against FER2013's labels).
The labels are the folder names (curated = raw). ``--limit N`` keeps N images per class and split
(quick experiments).

    python bench/make_manifest.py /work/shared/data/fer2013 > /tmp/fer2013-raw.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fercurate.manifest import FORMAT, FORMAT_VERSION, content_hash, dumps, sha256_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--val-fraction", type=float, help="carve val from train instead of using PublicTest_* files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--test-all", action="store_true",
                   help="every test/ image (PublicTest_* too) in the test split, no val: an --eval-manifest that "
                        "scores a curated run on all of FER2013's val and test images with their raw labels")
    args = p.parse_args()
    classes = sorted(d.name for d in (args.root / "train").iterdir() if d.is_dir())
    rng = np.random.default_rng(args.seed)
    samples = []
    for top in ("train", "test"):
        for label in classes:
            files = sorted((args.root / top / label).iterdir())[: args.limit]
            is_val = np.array([f.name.startswith("PublicTest_") for f in files]) \
                if args.val_fraction is None and not args.test_all else np.zeros(len(files), bool)
            if top == "train" and args.val_fraction is not None:
                is_val[rng.choice(len(files), round(args.val_fraction * len(files)), replace=False)] = True
            for f, v in zip(files, is_val):
                split = "val" if v else top
                samples.append({"id": f.stem, "filepath": str(f.resolve()), "label": label, "split": split,
                                "weight": 1.0, "original_label": label, "original_filepath": str(f.resolve()),
                                "source": {"usage": f.stem.split("_")[0]}, "sha256": sha256_file(str(f))})
    lines = [dumps(s) for s in samples]
    counts = {sp: {c: sum(s["split"] == sp and s["label"] == c for s in samples) for c in classes}
              for sp in ("train", "val", "test")}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "dataset": "fer2013", "version": "raw",
              "content_hash": content_hash(lines), "num_samples": len(lines), "classes": classes,
              "split_counts": counts, "policy": {"name": "none"}}
    sys.stdout.write(dumps(header) + "".join(lines))


if __name__ == "__main__":
    main()
