"""The view bank and the teacher-logit cache: the same distillation loss as running the teachers,
the same views on every epoch draw, and a run that trains on it and reuses the cache on resume."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training_manifests import CLASSES, manifest_lines
from training import eadd
from training.data import load_manifest_splits
from training.loop import Batch
from training.manifest import read_manifest
from training.models import create_model
from training.profiles import get_profile, with_overrides
from training.runtime import Context
from training.stages import make_distill_loss, student_inputs
from training.view_bank import build_bank, teacher_logits


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def splits(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    return load_manifest_splits(m, 0.1, 0)[0]


def _ctx(tmp_path) -> Context:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True, exist_ok=True)
    return Context(out=tmp_path / "run", device=torch.device("cpu"), seed=3, classes=CLASSES, policy={"name": "none"})


def test_the_bank_holds_the_image_its_mirror_and_seeded_augmentations(splits):
    train = splits["train"]
    bank = build_bank(train, 4, seed=3)
    assert bank.images.shape == (4, *train.images.shape) and bank.images.dtype == torch.uint8
    assert torch.equal(bank.images[0], train.images) and torch.equal(bank.images[1], train.images.flip(-1))
    assert not torch.equal(bank.images[2], bank.images[3])                 # two different draws
    assert torch.equal(build_bank(train, 4, seed=3).images, bank.images)   # rebuilt identically (resume)
    assert not torch.equal(build_bank(train, 4, seed=4).images[2], bank.images[2])
    # each epoch draws one view per image, the same draw every time it is asked for
    assert torch.equal(bank.epoch_views(0), bank.epoch_views(0))
    assert not torch.equal(bank.epoch_views(0), bank.epoch_views(1))
    assert set(bank.epoch_views(0).tolist()) <= set(range(4))
    idx, views = torch.tensor([2, 0]), torch.tensor([1, 3])
    assert torch.allclose(bank.batch(idx, views), bank.images[views, idx].float() / 255)


@pytest.mark.parametrize("mode", ["kd", "eadd"])
def test_cached_teacher_logits_give_the_loss_of_running_the_teachers(tmp_path, splits, mode):
    train, val = splits["train"], splits["val"]
    torch.manual_seed(0)
    teachers = {"a": create_model("vgg48", len(CLASSES)).eval(), "b": create_model("convnext_atto_48", len(CLASSES)).eval()}
    bank = build_bank(train, 3, seed=3)
    cached = teacher_logits(teachers, bank, torch.device("cpu"))
    assert cached.shape == (2, 3, len(train), len(CLASSES))
    strength = torch.rand(2, len(CLASSES))
    prof = get_profile("smoke")
    ctx = _ctx(tmp_path)
    with_cache = make_distill_loss(ctx, mode, prof, teachers, val, strength, [], cached)[0]
    without = make_distill_loss(ctx, mode, prof, teachers, val, strength, [], None)[0]
    student = create_model("hybrid_student_small", len(CLASSES)).eval()
    idx = torch.tensor([5, 1, 7, 2])
    views = torch.tensor([0, 2, 1, 2])
    batch = Batch(bank.batch(idx, views), train.labels[idx], torch.rand(4) + 0.5, None, idx, views)
    assert torch.allclose(with_cache(student, batch), without(student, batch), atol=1e-5)
    # and a cache that belongs to other views would not: the lookup really is what the loss uses
    wrong = Batch(batch.x, batch.y, batch.w, None, idx, (views + 1) % 3)
    assert not torch.allclose(with_cache(student, wrong), without(student, batch), atol=1e-4)


def test_a_run_trains_students_on_the_bank_and_reuses_the_cache_on_resume(tmp_path, splits, monkeypatch):
    from training import stages
    from training.run import RunConfig, run_pipeline

    prof = with_overrides(get_profile("smoke"), teachers=("vgg48",), distill_views=3, robust_eps=(4,),
                          robust_pgd_restarts=1, robust_apgd_steps=0)
    m = read_manifest(manifest_lines(tmp_path / "img2", per_class=4), "m.jsonl")
    out = tmp_path / "run2"
    metrics = run_pipeline(RunConfig(out=str(out), profile=prof, device="cpu", modes=("eadd",)), m)
    saved = torch.load(out / "checkpoints" / "teacher-logits.pt", weights_only=False)
    assert saved["logits"].shape[:2] == (1, 3) and saved["key"]["teachers"] == ["vgg48"]
    assert metrics["students"]["eadd"]["distilled"]["test"]["curated"]["accuracy"] >= 0
    assert json.loads((out / "config.json").read_text())["profile"]["distill_views"] == 3
    # a resumed run finds the file and does not run the teachers again; another seed does
    calls = []
    monkeypatch.setattr(stages, "teacher_logits", lambda *a, **k: calls.append(1) or saved["logits"])
    train = load_manifest_splits(m, 0.1, 0)[0]["train"]
    for seed in (0, 1):
        ctx = Context(out=out, device=torch.device("cpu"), seed=seed, classes=CLASSES, policy={"name": "none"},
                      bf16=metrics["precision"] == "bf16")   # the logits' precision is part of the key
        bank, cached = student_inputs(ctx, prof, train, {"vgg48": None})
        assert torch.equal(cached, saved["logits"]) and bank.n_views == 3
    assert calls == [1]


def test_another_mode_on_the_same_teachers_and_seed_reuses_their_logits_and_another_seed_does_not(tmp_path,
                                                                                                   monkeypatch):
    """--teachers-from copies the source's teacher-logits.pt; the cache key decides whether it fits:
    kd after eadd on seed 0 runs no teacher over the bank, seed 1 (other augmented views) does."""
    from training import stages
    from training.run import RunConfig, run_pipeline

    prof = with_overrides(get_profile("smoke"), teachers=("vgg48",), distill_views=3, robust_eps=(4,),
                          robust_pgd_restarts=1, robust_apgd_steps=0)
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    a = tmp_path / "a"
    run_pipeline(RunConfig(out=str(a), profile=prof, device="cpu", modes=("eadd",)), m)
    real = stages.teacher_logits
    calls = []
    monkeypatch.setattr(stages, "teacher_logits", lambda *args, **kw: calls.append(1) or real(*args, **kw))

    same = run_pipeline(RunConfig(out=str(tmp_path / "b"), profile=prof, device="cpu", modes=("kd",),
                                  teachers_from=str(a)), m)
    assert calls == [] and "onnx" in same["students"]["kd"]
    assert any("teacher-logits.pt already" in line for line in same["log"])
    assert torch.equal(torch.load(tmp_path / "b" / "checkpoints" / "teacher-logits.pt", weights_only=False)["logits"],
                       torch.load(a / "checkpoints" / "teacher-logits.pt", weights_only=False)["logits"])

    other = run_pipeline(RunConfig(out=str(tmp_path / "c"), profile=prof, device="cpu", modes=("kd",), seed=1,
                                   teachers_from=str(a)), m)
    assert calls == [1] and not any("teacher-logits.pt already" in line for line in other["log"])
    key = torch.load(tmp_path / "c" / "checkpoints" / "teacher-logits.pt", weights_only=False)["key"]
    assert key["seed"] == 1   # recomputed for seed 1's views, replacing the copied seed-0 file


def test_eadd_re_estimates_the_strengths_every_epoch_and_they_move_the_teacher_weights(tmp_path):
    from training.run import RunConfig, run_pipeline

    prof = with_overrides(get_profile("smoke"), teachers=("vgg48", "convnext_atto_48"), teacher_epochs=2,
                          student_epochs=3, adv_epochs=0.5, distill_views=3, robust_eps=(4,), robust_apgd_steps=0,
                          robust_pgd_restarts=1, strength_momentum=0.5)
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    metrics = run_pipeline(RunConfig(out=str(tmp_path / "run"), profile=prof, device="cpu", modes=("eadd",)), m)
    history = metrics["students"]["eadd"]["strength_history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    s = [torch.tensor(h["strength"]) for h in history]
    assert s[0].shape == (2, len(CLASSES))
    assert not torch.allclose(s[0], s[1]) or not torch.allclose(s[1], s[2])   # re-estimated on augmented val
    # each later estimate is the running blend m*s + (1-m)*s_new, so it stays within [0, 1]
    assert all(((t >= 0) & (t <= 1)).all() for t in s)
    # and the weights a batch gets change with them
    torch.manual_seed(0)
    logits, y = torch.randn(2, 16, len(CLASSES)), torch.randint(0, len(CLASSES), (16,))
    cfg = eadd.DistillConfig(tau_w=prof.tau_w, beta=prof.beta)
    moved = [i for i in (1, 2) if not torch.allclose(s[i], s[i - 1])]
    assert moved and not torch.allclose(eadd.teacher_weights(logits, y, s[moved[0]], cfg),
                                        eadd.teacher_weights(logits, y, s[moved[0] - 1], cfg))
