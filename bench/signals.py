"""Benchmark: every curation signal on the full FER2013.

Default (``--mode launch``): what a user runs, ``fercurate launch fer2013 --no-app`` in one
process on a fresh FERCURATE_HOME (own MongoDB): ingest, every signal, the proposed fixes.
Records its wall time and peak RSS, and each signal's own compute time from the dataset.
``--mode per-signal``: ingest, then each signal in run order in its own
``fercurate compute DATASET SIGNAL`` process (wall time and peak RSS of each; every process
also pays start-up and refreshing the proposed fixes). Targets: the launch <= 15 min on
this 2-core machine, duplicates <= 1 min. Prints JSON and saves bench/results/signals.json
(``--results`` elsewhere), with the machine it ran on.

    python bench/signals.py [--source ../shared/data/fer2013] [--home DIR] [--mode launch|per-signal] [--results F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from training.runtime import describe_machine

REPO = Path(__file__).resolve().parent.parent
PEAK = ("import resource,runpy,sys; sys.argv=['fercurate']+sys.argv[1:]; "
        "rc=0\ntry:\n runpy.run_module('fercurate.cli', run_name='__main__')\nexcept SystemExit as e:\n rc=e.code or 0\n"
        "r=resource.getrusage; print('PEAK_MB', max(r(resource.RUSAGE_SELF).ru_maxrss, "
        "r(resource.RUSAGE_CHILDREN).ru_maxrss)/1024, file=sys.stderr); sys.exit(rc)")

#: each signal's own compute time and summary, as the runner recorded them in the dataset
SIGNAL_RECORDS = ("import json; from fercurate import dataset; from fercurate.signals import computed; "
                  "print(json.dumps({n: {'seconds': r.get('seconds'), 'summary': r.get('summary', {})} "
                  "for n, r in computed(dataset.load('fer2013')).items()}, default=str))")


def run(args: list[str], env: dict) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = [float(line.split()[1]) for line in out.stderr.splitlines() if line.startswith("PEAK_MB")]
    if out.returncode:
        tail = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("PEAK_MB")][-3:]
        sys.exit(f"{' '.join(args)} failed: {' | '.join(tail)}")
    return wall, (peak[0] if peak else float("nan")), out.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "fer2013")
    p.add_argument("--home", help="FERCURATE_HOME to use (default: a fresh temporary one)")
    p.add_argument("--signals", nargs="*", help="per-signal mode: signals to time (default: all, in run order)")
    p.add_argument("--mode", choices=("launch", "per-signal"), default="launch")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "signals.json",
                   help="where to write the JSON (default bench/results/signals.json)")
    args = p.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="fercurate-bench-signals-")
    env = {**os.environ, "FERCURATE_HOME": home, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    results = {}
    if args.mode == "launch":
        wall, peak, _ = run(["launch", "fer2013", "--source", str(args.source), "--no-app"], env)
        results["launch"] = {"seconds": round(wall, 1), "peak_mb": round(peak)}
    else:
        wall, peak, _ = run(["ingest", str(args.source), "--name", "fer2013"], env)
        results["ingest"] = {"seconds": round(wall, 1), "peak_mb": round(peak)}
        sys.path.insert(0, str(REPO))
        from fercurate.signals import resolve
        for name in args.signals or resolve(None):
            wall, peak, _ = run(["compute", "fer2013", name], env)
            results[name] = {"seconds": round(wall, 1), "peak_mb": round(peak)}
            print(f"{name}: {wall:.1f} s, peak {peak:.0f} MB", file=sys.stderr, flush=True)
    records = json.loads(subprocess.run([sys.executable, "-c", SIGNAL_RECORDS], env=env, capture_output=True,
                                        text=True, check=True).stdout)
    out = {"mode": args.mode, "command": "python bench/signals.py " + " ".join(sys.argv[1:]),
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": describe_machine(torch.device("cpu")),   # label_issues trains in bf16 only where native
           "source": str(args.source), "home": home, "per_process": results,
           "total_s": round(sum(v["seconds"] for v in results.values()), 1),
           "signal_seconds": {n: r["seconds"] for n, r in records.items()},
           "targets": {"launch_s": 900, "duplicates_s": 60},
           "summaries": {n: r["summary"] for n, r in records.items()}}
    print(json.dumps({k: v for k, v in out.items() if k != "summaries"}, indent=2))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
