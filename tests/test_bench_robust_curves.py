"""bench/robust_curves.py re-attacks a finished run's two students, nested, and checks it loaded them right."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.training_manifests import CLASSES, manifest_lines, write_manifest
from training import cli, rebalance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import robust_curves  # noqa: E402


def _curves(monkeypatch, run: Path, results: Path, *extra: str) -> None:
    monkeypatch.setattr(sys, "argv", ["robust_curves.py", "--run", str(run), "--mode", "ce", "--images", "6",
                                      "--eps", "8,1", "--pgd-steps", "1", "--pgd-restarts", "2", "--apgd-steps", "1",
                                      "--threads", "1", "--results", str(results), *extra])
    robust_curves.main()


def test_curves_of_both_students_with_the_run_rebalance_and_a_check_that_they_are_the_run_students(
        tmp_path, monkeypatch, capsys):
    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))
    run = tmp_path / "run"
    assert cli.main(["--manifest", str(manifest), "--profile", "smoke", "--threads", "1", "--mode", "ce",
                     "--robust-images", "4", "--apgd-steps", "0", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["students"]["ce"]["adversarial"]["rebalance"]["class_offsets"]   # the offsets must be re-added
    offsets = metrics["students"]["ce"]["adversarial"]["rebalance"]["class_offsets"]
    students = robust_curves.load_students(run, "ce", CLASSES, metrics)
    saved = torch.load(run / "checkpoints" / "adversarial-ce.pt", weights_only=False)["model"]
    model = students["adversarial"]
    head = rebalance.classifier_layer(model, len(CLASSES))
    name = next(n for n, m in model.named_modules() if m is head)
    torch.testing.assert_close(head.bias.detach(), saved[f"{name}.bias"] + torch.tensor([offsets[c] for c in CLASSES]))
    results = tmp_path / "curves.json"
    _curves(monkeypatch, run, results, "--stage", "adversarial")
    _curves(monkeypatch, run, results, "--stage", "distilled")     # the second part joins the same entry
    (joined,) = json.loads(results.read_text())["entries"]
    assert {s: "--stage " + s in v["command"] for s, v in joined["stages"].items()} == \
        {"adversarial": True, "distilled": True}
    _curves(monkeypatch, run, results)                    # a rerun replaces its own entry
    _curves(monkeypatch, run, results.with_name("other.json"), "--stage", "distilled", "--pgd-steps", "2")
    (entry,) = json.loads(results.read_text())["entries"]
    assert entry["mode"] == "ce" and entry["n_images"] == 6 and entry["command"].startswith("python ")
    for stage in ("distilled", "adversarial"):
        r = entry["stages"][stage]["robust"]
        assert r["nested"] and r["pgd_steps"] == 1 and r["pgd_restarts"] == 2 and r["apgd_steps"] == 1
        assert list(r["worst"]) == ["1/255", "8/255"]
        assert r["worst"]["8/255"] <= r["worst"]["1/255"] <= r["clean"]
        recorded = metrics["students"]["ce"][stage]["test"]["curated"]["accuracy"] * 100
        assert entry["stages"][stage]["test_acc"] == pytest.approx(recorded, abs=0.1)
    assert "masking at" in capsys.readouterr().out
    # measured another way: not merged into an entry of the old settings
    other = json.loads(results.with_name("other.json").read_text())["entries"]
    assert robust_curves.merge_entry(json.loads(results.read_text())["entries"], other[0])[0]["stages"].keys() == \
        {"distilled"}

    # a student that is not the run's (here: its checkpoint swapped for the other stage's) is refused
    ck = run / "checkpoints"
    (ck / "student-ce.pt").write_bytes((ck / "adversarial-ce.pt").read_bytes())
    metrics["students"]["ce"]["distilled"]["test"]["curated"]["accuracy"] += 0.2
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match="do not belong together"):
        _curves(monkeypatch, run, results)
    with pytest.raises(SystemExit, match="no finished student 'kd'"):
        monkeypatch.setattr(sys, "argv", ["robust_curves.py", "--run", str(run), "--mode", "kd"])
        robust_curves.main()
    monkeypatch.setattr(sys, "argv", ["robust_curves.py", "--run", str(run), "--mode", "ce", "--eps", "1,2.5"])
    with pytest.raises(SystemExit):
        robust_curves.main()
    assert "--eps '1,2.5': give whole grey levels" in capsys.readouterr().err
    (ck / "adversarial-ce.pt").unlink()
    with pytest.raises(SystemExit, match="no adversarial-ce.pt in checkpoints/"):
        robust_curves.load_students(run, "ce", CLASSES, metrics)
    with pytest.raises(SystemExit, match="not a training run folder"):
        monkeypatch.setattr(sys, "argv", ["robust_curves.py", "--run", str(tmp_path), "--mode", "ce"])
        robust_curves.main()
