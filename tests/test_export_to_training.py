"""The hand-off the product is built around: ``fercurate export --view V | training``."""

from __future__ import annotations

import json
import shlex
import subprocess

from fercurate import fixes, schema, versions
from tests.factories import planted_review_dataset


def pipe(command: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_a_frozen_version_streams_into_a_smoke_training_run(tmp_path, unique_name):
    ds, ids = planted_review_dataset(tmp_path / "fer2013", unique_name)
    fixes.propose(ds)
    fixes.decide(ds, [ids["mislabeled"], ids["duplicate"]], schema.ACCEPT, curator="ana")
    versions.freeze(ds, "clean_v1", policy="class_weights")
    name, out = shlex.quote(ds.name), tmp_path / "run"

    done = pipe(f"fercurate export --view clean_v1 --dataset {name} | "
                f"training --profile smoke --out {shlex.quote(str(out))} --threads 1 --soft-labels", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    header = json.loads((out / "manifest_header.json").read_text())
    assert header["version"] == "clean_v1" and header["num_samples"] == len(ds) - 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["soft_label_weight"] == 0.5      # the version carries the label_issues posterior
    test = metrics["students"]["eadd"]["adversarial"]["test"]
    assert {"curated", "raw"} <= set(test) and test["n_images"] == 14
    assert (out / "report.md").is_file() and list(out.glob("*.onnx"))


def test_a_truncated_stream_stops_training_before_it_starts(tmp_path, unique_name):
    ds, _ = planted_review_dataset(tmp_path / "fer2013", unique_name)
    out = tmp_path / "run"
    done = pipe(f"fercurate export --view raw --dataset {shlex.quote(ds.name)} | head -n 10 | "
                f"training --profile smoke --out {shlex.quote(str(out))}", tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "9" in done.stderr  # names what is missing
    assert not (out / "checkpoints").exists()
