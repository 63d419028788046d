"""Benchmark: ingest the full FER2013 into a fresh dataset, then re-ingest it unchanged.

Each run is ``fercurate ingest`` in a fresh process against a fresh FERCURATE_HOME (and so
a fresh MongoDB). Reports wall time and the peak RSS of the fercurate process.
Targets (issue #2): first ingest <= 60 s, re-run <= 10 s, on a 2-core machine.

    python bench/ingest.py [--source ../shared/data/fer2013] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_ingest(source: Path, home: str) -> tuple[float, float]:
    env = {**os.environ, "FERCURATE_HOME": home}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fercurate.cli", "ingest", str(source), "--name", "fer2013"],
                         env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        sys.exit(f"ingest failed: {out.stderr.strip().splitlines()[-1]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "fer2013")
    p.add_argument("--runs", type=int, default=1, help="fresh-home repetitions (median reported)")
    args = p.parse_args()
    first, again, peaks = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="fercurate-bench-") as home:
            w1, m1 = timed_ingest(args.source, home)
            w2, _ = timed_ingest(args.source, home)
            first.append(w1), again.append(w2), peaks.append(m1)
    result = {
        "source": str(args.source), "runs": args.runs,
        "first_ingest_s": round(statistics.median(first), 1),
        "rerun_unchanged_s": round(statistics.median(again), 1),
        "peak_rss_mb": round(max(peaks)),
        "targets": {"first_ingest_s": 60, "rerun_unchanged_s": 10},
    }
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
