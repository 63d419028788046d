"""Model registry, after timm's ``register_model`` / ``create_model``.

Every registered model takes ``(B, 1, 48, 48)`` float pixels in [0, 1] and returns logits
``(B, num_classes)`` in the manifest's (alphabetical) class order; normalisation and any
resizing are the model's first layers, so adversarial attacks work in pixel space.

``create_model`` tags each model with ``fer_meta = {"name", "kind", "params", "source"}``.
``"student"`` is an alias of ``conv_transformer_student`` (the default student).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from training.errors import TrainingError

KINDS = ("teacher", "student")
ALIASES = {"student": "conv_transformer_student"}


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    kind: str
    source: str


_REGISTRY: dict[str, _Entry] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, kind: str = "teacher",
                   source: str = "fercurate"):
    """Registers a factory ``fn(num_classes, **kwargs)`` under ``fn.__name__``.

    Use as ``@register_model`` (a teacher) or ``@register_model(kind="student", source=...)``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")

    def register(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if factory.__name__ in _REGISTRY:
            raise ValueError(f"model {factory.__name__!r} is already registered")
        _REGISTRY[factory.__name__] = _Entry(factory, kind, source)
        return factory

    return register(fn) if fn is not None else register


def list_models(kind: str | None = None) -> list[str]:
    """Registered names (aliases excluded), sorted; only teachers or students if ``kind`` is given."""
    if kind is not None and kind not in KINDS:
        raise TrainingError(f"unknown model kind {kind!r}: use one of {', '.join(KINDS)}")
    return sorted(name for name, entry in _REGISTRY.items() if kind is None or entry.kind == kind)


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Builds a registered model; kwargs go to its factory (e.g. ``checkpoint``, ``weights``)."""
    resolved = ALIASES.get(name, name)
    entry = _REGISTRY.get(resolved)
    if entry is None:
        raise TrainingError(f"unknown model {name!r}: available models are "
                            f"{', '.join(list_models() + sorted(ALIASES))}")
    model = entry.factory(num_classes=num_classes, **kwargs)
    model.fer_meta = {"name": resolved, "kind": entry.kind,
                      "params": sum(p.numel() for p in model.parameters()), "source": entry.source}
    return model


# The model modules register themselves on import; they need register_model defined above.
from training.models import mini_xception, student, teachers, vgg48  # noqa: E402,F401
