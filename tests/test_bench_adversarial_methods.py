"""bench/adversarial_methods.py turns a finished run into one copy per fine-tune method and settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import adversarial_methods as am  # noqa: E402


def test_a_method_token_carries_profile_settings_as_json_values():
    assert am.parse_method("pgd") == {"adv_method": "pgd"}
    assert am.parse_method("anchored@adv_rebalance=false,adv_weight=0.7") == \
        {"adv_method": "anchored", "adv_rebalance": False, "adv_weight": 0.7}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        am.parse_method("pgd@adv_rebalance")


def _run(folder: Path) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "student-ce.pt").write_bytes(b"distilled")
    (folder / "checkpoints" / "adversarial-ce.pt").write_bytes(b"fine-tuned")
    (folder / "config.json").write_text(json.dumps({"profile": {"adv_method": "pgd", "adv_weight": 0.5}}))
    (folder / "metrics.json").write_text(json.dumps({"students": {"ce": {
        "distilled": {"test_acc": 60}, "adversarial": {"test_acc": 55}, "onnx": {}, "speed": {}}}}))
    return folder


def test_the_copy_is_the_run_right_after_distillation_with_the_method_settings(tmp_path):
    run = _run(tmp_path / "run")
    am.prepare_copy(run, tmp_path / "copy", "ce", "anchored@adv_rebalance=false")
    cfg = json.loads((tmp_path / "copy" / "config.json").read_text())["profile"]
    assert cfg == {"adv_method": "anchored", "adv_weight": 0.5, "adv_rebalance": False}
    entry = json.loads((tmp_path / "copy" / "metrics.json").read_text())["students"]["ce"]
    assert entry == {"distilled": {"test_acc": 60}}       # the fine-tune's results dropped, so --resume redoes it
    assert (tmp_path / "copy" / "checkpoints" / "student-ce.pt").is_file()
    assert not (tmp_path / "copy" / "checkpoints" / "adversarial-ce.pt").exists()
    with pytest.raises(SystemExit, match="adv_wieght is not a profile field"):
        am.prepare_copy(run, tmp_path / "copy2", "ce", "pgd@adv_wieght=0.7")
