"""bench/training_seeds.py scores a curated run on every val and test image through its eval manifest
(bench/make_manifest.py --test-all), so it compares with a raw run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import training_seeds as ts  # noqa: E402

CLASSES = ("angry", "happy")


def _tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for top, names in (("train", ("Training_1", "Training_2")), ("test", ("PublicTest_1", "PrivateTest_1", "PrivateTest_2"))):
        for c in CLASSES:
            (root / top / c).mkdir(parents=True)
            for n in names:
                Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(root / top / c / f"{n}{c}.jpg")


def _manifest(root: Path, *flags: str) -> tuple[dict, list[dict]]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "make_manifest.py"), str(root), *flags],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return json.loads(out[0]), [json.loads(line) for line in out[1:]]


def test_test_all_puts_every_test_image_in_the_test_split(tmp_path):
    _tree(tmp_path / "fer")
    header, rows = _manifest(tmp_path / "fer")
    assert header["split_counts"]["val"] == {"angry": 1, "happy": 1}
    header, rows = _manifest(tmp_path / "fer", "--test-all")
    assert header["split_counts"]["val"] == {"angry": 0, "happy": 0}
    assert header["split_counts"]["test"] == {"angry": 3, "happy": 3}
    assert {r["id"].split("_")[0] for r in rows if r["split"] == "test"} == {"PublicTest", "PrivateTest"}


def _predictions(path: Path, rows: list[tuple[str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "label", "original_label", "predicted"])
        for fp, label, pred in rows:
            w.writerow([fp, label, label, pred])


def test_a_run_with_an_eval_manifest_is_scored_on_its_public_rows_vs_crowd_and_private_rows_vs_labels(tmp_path):
    run = tmp_path / "run"
    _predictions(run / "predictions" / "student-ce-eval-test.csv", [
        ("/d/test/angry/PublicTest_1angry.jpg", "angry", "happy"),    # crowd says happy: right
        ("/d/test/happy/PublicTest_1happy.jpg", "happy", "happy"),    # crowd says angry: wrong
        ("/d/test/angry/PrivateTest_1angry.jpg", "angry", "angry"),
        ("/d/test/happy/PrivateTest_1happy.jpg", "happy", "angry"),
        ("/d/test/happy/PrivateTest_2happy.jpg", "happy", "happy"),
    ])
    _predictions(run / "predictions" / "student-ce-val.csv", [("/d/test/angry/PublicTest_1angry.jpg", "angry", "happy")])
    crowd = {"test/angry/PublicTest_1angry.jpg": "happy", "test/happy/PublicTest_1happy.jpg": "angry"}
    split = {"curated": {"accuracy": 0.5, "macro_f1": 0.5, "per_class_recall": {}}, "raw": {"accuracy": 0.5}}
    state = {"test": split, "val": split, "robust": {"n_images": 0}}
    row = ts.student_row({"distilled": state}, run, "ce", crowd)
    ev = row["distilled"]["eval_manifest"]
    # per emotion the crowd names: it calls the angry-labelled face happy (named) and the happy one angry (missed)
    assert ev["val_acc_crowd"] == {"accuracy": 50.0, "n_images": 2, "recall": {"angry": 0.0, "happy": 100.0},
                                   "n_per_class": {"angry": 1, "happy": 1}}
    assert ev["test_acc_raw_labels"] == {"accuracy": round(100 * 2 / 3, 2), "n_images": 3}
    assert row["distilled"]["val_acc_crowd"]["accuracy"] == 100.0              # only the kept val image
    assert row["distilled"]["val_acc_crowd"]["n_per_class"] == {"happy": 1}
    # a run without an eval manifest has no such entry
    (run / "predictions" / "student-ce-eval-test.csv").unlink()
    assert "eval_manifest" not in ts.student_row({"distilled": state}, run, "ce", crowd)["distilled"]


def _row(seed: int, mode: str, all_val_crowd: float, content_hash: str = "sha256:a", fear: float = 10.0) -> dict:
    """A summarized run as summarize() writes it, with the figures aggregate() reads."""
    state = {"test_acc": 80.0 + seed, "val_acc_crowd": {"accuracy": 90.0, "n_images": 2},
             "eval_manifest": {"val_acc_crowd": {"accuracy": all_val_crowd, "n_images": 3372,
                                                 "recall": {"fear": fear, "happy": 95.0}},
                               "test_acc_raw_labels": {"accuracy": 60.0 + seed, "n_images": 3589}}}
    return {"run": f"runs/{mode}-s{seed}", "seed": seed, "content_hash": content_hash,
            "students": {mode: {"distilled": state, "adversarial": {}}}}


def test_runs_of_several_commands_pool_per_mode_over_seeds_on_every_face_and_never_across_manifests():
    rows = [_row(0, "ce", 71.0, fear=10.0), _row(1, "ce", 73.0, fear=20.0), _row(0, "eadd", 74.0, fear=40.0)]
    by_mode = ts.aggregate(rows)
    ce = by_mode["ce"]
    # each emotion's recall against the crowd pools over seeds like the accuracy
    assert ce["distilled_all_val_crowd_recall"]["fear"] == {"mean": 15.0, "std": 7.07, "n": 2, "seeds": [0, 1]}
    assert by_mode["eadd"]["distilled_all_val_crowd_recall"]["fear"]["mean"] == 40.0
    assert "adversarial_all_val_crowd_recall" not in ce
    assert "fear 15.0" in ts.format_table(by_mode)
    assert ce["distilled_all_val_acc_crowd"] == {"mean": 72.0, "std": 1.41, "n": 2, "seeds": [0, 1]}
    assert ce["distilled_privatetest_acc_raw_labels"]["mean"] == 60.5
    assert ce["distilled_val_acc_crowd"]["mean"] == 90.0           # the kept val images only
    assert by_mode["eadd"]["distilled_all_val_acc_crowd"] == {"mean": 74.0, "std": None, "n": 1, "seeds": [0]}
    assert "adversarial_test_acc" not in ce                          # no fine-tuned student: no figure
    ts.check_poolable(rows)
    try:
        ts.check_poolable(rows + [_row(2, "ce", 60.0, content_hash="sha256:b")])
    except SystemExit as e:
        assert "different manifests" in str(e) and "runs/ce-s2" in str(e) and "\n" not in str(e)
    else:
        raise AssertionError("runs of two manifests were pooled")
    twice = rows + [{**_row(1, "ce", 73.0), "run": "elsewhere/ce-s1"}]
    try:
        ts.check_poolable(twice)
    except SystemExit as e:
        assert "seed 1" in str(e) and "elsewhere/ce-s1" in str(e) and "\n" not in str(e)
    else:
        raise AssertionError("one seed's student was counted twice")


def test_a_training_run_that_stops_is_one_line_that_says_how_to_resume_not_a_traceback(tmp_path):
    _tree(tmp_path / "fer")
    header, rows = _manifest(tmp_path / "fer")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in [header, *rows]) + "\n")
    # an option training refuses makes the child exit with status 2 before it trains anything
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "training_seeds.py"), "--manifest", str(manifest),
                           "--modes", "ce", "--seeds", "3", "--out", str(tmp_path / "runs"),
                           "--training-args", "--epochs not-a-number"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("training_seeds: training seed 3 stopped (exit status 2);")
    assert last.endswith("it trained nothing: mend the error above and run again")
    # a run that had started (its config is written) resumes
    started = tmp_path / "runs" / f"{header.get('version', 'manifest')}-cpu-s3"
    started.mkdir(parents=True)
    (started / "config.json").write_text("{}")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "training_seeds.py"), "--manifest", str(manifest),
                           "--modes", "ce", "--seeds", "3", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=ROOT)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert last.endswith(f"{started} keeps its checkpoints: run this command again to resume it")
