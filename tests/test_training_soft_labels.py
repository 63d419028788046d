"""--soft-labels: the manifest's soft_label reaches the loss as (1-W)*onehot + W*soft, and only when asked."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tests.training_manifests import CLASSES, manifest_lines, write_manifest
from training import cli
from training.data import load_manifest_splits
from training.loop import Batch, train_stage, weighted_ce
from training.manifest import read_manifest
from training.runtime import Context

pytestmark = pytest.mark.usefixtures("one_thread")


def test_soft_labels_are_read_and_mixed_with_the_curated_label(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=2, soft=True), "m.jsonl")
    train = load_manifest_splits(m, 0.1, 0)[0]["train"]
    assert train.soft is not None and train.soft.shape == (len(train), len(CLASSES))
    idx = torch.arange(4)
    t = train.targets(idx, 0.5)
    y = train.labels[idx]
    assert torch.allclose(t.sum(1), torch.ones(4))
    assert torch.allclose(t[torch.arange(4), y], torch.full((4,), 0.5 + 0.5 * 0.7))
    assert torch.allclose(t[torch.arange(4), (y + 1) % len(CLASSES)], torch.full((4,), 0.15))
    # a subset keeps each sample's own soft label
    sub = train.subset([3, 1])
    assert torch.equal(sub.soft, train.soft[[3, 1]])
    # the loss against the mixed target is the soft cross-entropy, not the hard one
    logits = torch.randn(4, len(CLASSES))
    net = lambda x: logits  # noqa: E731
    w = torch.ones(4)
    soft_loss = weighted_ce(net, Batch(None, y, w, t, idx))
    expected = -(t * F.log_softmax(logits, -1)).sum(1).mean()
    assert torch.allclose(soft_loss, expected) and not torch.allclose(soft_loss, weighted_ce(net, Batch(None, y, w, None, idx)))


def test_a_manifest_without_soft_labels_has_none(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=2), "m.jsonl")
    assert load_manifest_splits(m, 0.1, 0)[0]["train"].soft is None


def test_the_training_loop_hands_the_loss_soft_targets_only_when_asked(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=2, soft=True), "m.jsonl")
    train = load_manifest_splits(m, 0.1, 0)[0]["train"]
    seen = []

    def spy(net, batch):
        seen.append(batch.soft)
        return weighted_ce(net, batch)

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    for stage, weight in (("hard", 0.0), ("soft", 0.25)):
        ctx = Context(out=tmp_path / "run", device=torch.device("cpu"), seed=0, classes=CLASSES, policy={"name": "none"})
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, len(CLASSES)))
        train_stage(ctx, stage, net, train, epochs=1, lr=1e-3, weight_decay=0.0, batch_size=8, checkpoint_every=100,
                    loss_fn=spy, soft_weight=weight)
    steps = len(seen) // 2
    assert all(t is None for t in seen[:steps])
    assert all(t is not None and torch.allclose(t.sum(1), torch.ones(len(t))) for t in seen[steps:])
    assert all(0.75 <= float(t.max()) <= 0.75 + 0.25 * 0.7 + 1e-6 for t in seen[steps:])


def test_soft_label_training_runs_and_is_recorded(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "soft.jsonl", manifest_lines(tmp_path / "img", per_class=2, soft=True))
    out = tmp_path / "run"
    assert cli.main(["--manifest", str(manifest), "--profile", "smoke", "--mode", "ce", "--out", str(out),
                     "--threads", "1", "--soft-labels", "0.3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["soft_label_weight"] == 0.3
    assert "Trained on soft labels: target = 0.7 x the label + 0.3 x" in (out / "report.md").read_text()
    saved = json.loads((out / "config.json").read_text())
    assert saved["profile"]["soft_label_weight"] == 0.3          # a resumed run keeps training on them


def test_soft_labels_asked_of_a_manifest_without_them_is_one_line(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "hard.jsonl", manifest_lines(tmp_path / "img", per_class=2))
    args = ["--manifest", str(manifest), "--profile", "smoke", "--mode", "ce", "--threads", "1"]
    assert cli.main(args + ["--out", str(tmp_path / "a"), "--soft-labels"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no train sample carries a 'soft_label'" in err[0] and "hard.jsonl" in err[0]
    assert cli.main(args + ["--out", str(tmp_path / "b"), "--soft-labels", "1.5"]) == 2
    assert "0 < W <= 1" in capsys.readouterr().err
