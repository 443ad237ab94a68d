"""Fine-tuned RPN checkpoints: safetensors weights plus a JSON description, written atomically.

A checkpoint is an RPN weights file of :mod:`rpn_core.rpn.weights` (``NAME.safetensors`` with the
``RPNConfig`` in its header, and the sha256-checked sidecar ``NAME.json``), so
:func:`rpn_core.rpn.loading.load_model` and the app's model loader read it as is. Its sidecar
``metadata`` holds the training story::

    {"kind": "rpn-studio-checkpoint", "label_preset": "faster-rcnn", "labels": {...},
     "anchors": {...}, "training": {TrainConfig}, "data": {split summary},
     "metrics": {"before": {"recall@100/0.7": ...}, "after": {...}, "final": {...}},
     "best_step": 90, "improved": true, "steps": 120, "stopped": "completed", "created":
     "2026-...Z"}

Loading (:func:`load_checkpoint`) checks, before building a model, that the tensor shapes fit
the stored configuration and -- when the caller names one -- that the anchor configuration
is the current one, and explains a mismatch in words ("the checkpoint has 9 anchors per
location (3 sizes x 3 ratios), the current configuration 12 (4 sizes x 3 ratios)").
Every failure is a :class:`CheckpointError` (a :class:`~rpn_core.rpn.weights.WeightsError`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.rpn.config import RPNConfig
from rpn_core.rpn.weights import WeightsError, read_weights

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rpn_core.rpn.model import RPNModel
    from rpn_core.training.types import TrainConfig, TrainResult

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "describe_anchor_mismatch",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

KIND = "rpn-studio-checkpoint"


class CheckpointError(WeightsError):
    """A checkpoint cannot be used here; ``path`` names it and ``reason`` explains why."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint's configuration and metadata (the sidecar's ``metadata`` object)."""

    path: Path
    config: RPNConfig
    metadata: dict

    @property
    def metrics(self) -> dict:
        return dict(self.metadata.get("metrics") or {})


def _anchor_text(a: AnchorConfig, noun: str = "") -> str:
    """``"9 anchors per location (3 sizes x 3 ratios)"`` (``noun`` between number and brackets)."""
    n_s, n_r = len(a.sizes), len(a.aspect_ratios)
    sizes = f"{n_s} size{'s' * (n_s != 1)}"
    ratios = f"{n_r} ratio{'s' * (n_r != 1)}"
    return f"{a.num_anchors_per_location}{noun} ({sizes} x {ratios})"


def _nums(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def describe_anchor_mismatch(checkpoint: AnchorConfig, current: AnchorConfig) -> str | None:
    """A sentence explaining how two anchor configurations differ, or None when equal."""
    if checkpoint == current:
        return None
    parts = []
    if checkpoint.num_anchors_per_location != current.num_anchors_per_location:
        parts.append(
            f"the checkpoint has {_anchor_text(checkpoint, ' anchors per location')}, "
            f"the current configuration {_anchor_text(current)}"
        )
    if checkpoint.sizes != current.sizes:
        parts.append(
            f"anchor sizes {_nums(checkpoint.sizes)} in the checkpoint, {_nums(current.sizes)} now"
        )
    if checkpoint.aspect_ratios != current.aspect_ratios:
        parts.append(
            f"aspect ratios (h/w) {_nums(checkpoint.aspect_ratios)} in the checkpoint, "
            f"{_nums(current.aspect_ratios)} now"
        )
    if checkpoint.stride != current.stride:
        parts.append(f"stride {checkpoint.stride} in the checkpoint, {current.stride} now")
    if checkpoint.strides != current.strides and checkpoint.sizes == current.sizes:
        parts.append(
            f"strides per size {_nums(checkpoint.strides)} in the checkpoint, "
            f"{_nums(current.strides)} now"
        )
    if len(checkpoint.levels) != len(current.levels):
        parts.append(
            f"{len(checkpoint.levels)} anchor level(s) in the checkpoint, "
            f"{len(current.levels)} now (a model of another version)"
        )
    return "; ".join(parts)


def save_checkpoint(
    model: RPNModel,
    path: str | Path,
    *,
    config: TrainConfig | None = None,
    result: TrainResult | None = None,
    extra: dict | None = None,
) -> str:
    """Write ``model`` with its training story (module docstring), atomically; return sha256.

    ``result`` (from :func:`rpn_core.training.finetune.fine_tune`) supplies the training settings,
    data
    summary and metrics; ``config`` alone is enough for the settings. Raises
    :class:`CheckpointError` when the files cannot be written.
    """
    from rpn_core.rpn.loading import save_weights

    train_config = result.config if result is not None else config
    metadata = {
        "kind": KIND,
        "label_preset": model.config.labels.preset_name,
        "labels": model.config.labels.to_dict(),
        "anchors": model.config.anchors.to_dict(),
        "training": train_config.to_dict() if train_config is not None else None,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if result is not None:
        metadata.update(
            data=result.data_summary,
            metrics={
                "before": result.metrics_before,
                "after": result.metrics_after,
                "final": result.metrics_final,
            },
            best_step=result.best_step,
            improved=result.improved,
            steps=result.steps,
            stopped=result.stopped,
            seconds=round(result.seconds, 3),
        )
    metadata.update(extra or {})
    try:
        return save_weights(model, path, metadata)
    except WeightsError as exc:
        raise CheckpointError(exc.path, exc.reason) from exc


def read_checkpoint(path: str | Path) -> tuple[CheckpointInfo, dict]:
    """``(info, state)``: the checkpoint read and its shapes checked against its config."""
    path = Path(path)
    state, config_dict, metadata = read_weights(path)
    try:
        config = RPNConfig.from_dict(config_dict)
    except ValueError as exc:
        raise CheckpointError(path, f"bad RPN configuration: {exc}") from exc
    _check_shapes(path, state, config)
    return CheckpointInfo(path, config, metadata), state


def _expected_shapes(config: RPNConfig) -> dict[str, tuple[int, ...]]:
    import torch

    from rpn_core.rpn.model import RPNModel

    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = RPNModel(config, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_shapes(path: Path, state: dict, config: RPNConfig) -> None:
    expected = _expected_shapes(config)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} tensor(s), e.g. {missing[0]!r}")
        if unexpected:
            detail.append(f"{len(unexpected)} unknown tensor(s), e.g. {unexpected[0]!r}")
        raise CheckpointError(path, "not weights of this RPN: " + "; ".join(detail))
    key = "rpn.head.cls_logits.weight"  # the stride-16 level's head
    a = config.anchors.levels[-1].num_anchors_per_location
    if key in state and tuple(state[key].shape)[0] != a:
        raise CheckpointError(
            path,
            f"the weights predict {tuple(state[key].shape)[0]} anchors per location but the "
            f"stored anchor configuration has {_anchor_text(config.anchors)}",
        )
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise CheckpointError(
                path, f"tensor {k!r} has shape {tuple(state[k].shape)}, the model needs {shape}"
            )


def load_checkpoint(
    path: str | Path,
    *,
    expected_anchors: AnchorConfig | None = None,
    device: str | None = None,
) -> tuple[RPNModel, CheckpointInfo]:
    """A model from a checkpoint, after :func:`read_checkpoint`'s checks.

    With ``expected_anchors`` (the configuration in use) a different anchor configuration is
    refused with an explanation (:func:`describe_anchor_mismatch`).
    """
    import torch

    from rpn_core.rpn.model import RPNModel, default_device

    info, state = read_checkpoint(path)
    if expected_anchors is not None:
        why = describe_anchor_mismatch(info.config.anchors, expected_anchors)
        if why:
            raise CheckpointError(info.path, f"anchor configuration differs: {why}")
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(info.path, f"tensor {key!r} holds NaN or infinite values")
    model = RPNModel(info.config, device="cpu")
    model.load_state_dict(state, strict=True)
    model.metadata = info.metadata
    return model.to(device or default_device()).eval(), info
