"""bench/gpu_paper.sh, the GPU run script, runs on CPU with tiny epochs and writes its results JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _fer_tree(root: Path, train_per_class: int = 6) -> None:
    """A Kaggle-layout FER2013 folder: Training_* in train/, PublicTest_* (val) and PrivateTest_* in test/."""
    import numpy as np

    rng = np.random.default_rng(0)
    for top, prefixes in (("train", ("Training",) * train_per_class), ("test", ("PublicTest", "PublicTest", "PrivateTest", "PrivateTest"))):
        for c in CLASSES:
            (root / top / c).mkdir(parents=True)
            for i, prefix in enumerate(prefixes):
                Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(root / top / c / f"{prefix}_{c}{i}.jpg")


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_gpu_paper_script_trains_the_paper_profile_and_writes_its_json(tmp_path):
    _fer_tree(tmp_path / "fer2013", train_per_class=3)    # the paper teachers are big: the fewest faces that train
    env = {**os.environ, "GPU_PAPER_DEVICE": "cpu", "GPU_PAPER_EPOCHS": "1,1,1",
           "GPU_PAPER_RESULTS": str(tmp_path / "gpu_paper.json"), "GPU_PAPER_TIMEOUT": "500",
           # the shape of the paper schedule, at a size a CPU test affords
           "GPU_PAPER_OVERRIDES": "--threads 1 --robust-images 4 --apgd-steps 3", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_paper.sh"), str(tmp_path / "fer2013"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_paper.json").read_text())
    (run,) = result["runs"]
    assert run["profile"] == "paper" and set(run["teachers"]) == {"vgg48_wide", "resnet18_48", "vit_tiny_patch8"}
    assert run["view_bank"]["views"] == 16 and run["wall_s"] > 0
    robust = run["students"]["eadd"]["adversarial"]["robust"]
    assert robust["n_images"] == 4 and set(robust["apgd_ce"]) == {"1/255", "2/255", "4/255", "8/255"}
    report = (tmp_path / "out" / "runs" / "raw-paper-s0" / "report.md").read_text()
    assert "| vit_tiny_patch8 | " in report and (tmp_path / "out" / "runs" / "raw-paper-s0" / "student-eadd.onnx").is_file()
    assert "training_seeds.py" in result["command"]


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_gpu_script_runs_the_ablation_table_with_seeds_on_the_first_seeds_teachers(tmp_path):
    _fer_tree(tmp_path / "fer2013")
    env = {**os.environ, "GPU_PAPER_DEVICE": "cpu", "GPU_PAPER_PROFILE": "smoke", "GPU_PAPER_MODES": "ce,kd",
           "GPU_PAPER_SEEDS": "0,1", "GPU_PAPER_EPOCHS": "1,1,0", "GPU_PAPER_RESULTS": str(tmp_path / "seeds.json"),
           "GPU_PAPER_OVERRIDES": "--threads 1 --robust-images 4 --apgd-steps 0",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_paper.sh"), str(tmp_path / "fer2013"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "seeds.json").read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1] and {r["profile"] for r in result["runs"]} == {"smoke"}
    first, second = result["runs"]
    assert first["teachers_from"] is None
    assert second["teachers_from"]["run"] == first["run"]                # seed 1 varies the students only
    assert result["by_mode"]["kd"]["distilled_test_acc"]["n"] == 2 and set(result["by_mode"]) == {"ce", "kd"}
