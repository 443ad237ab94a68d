"""Weights files to models and back: :func:`load_model` (any RPN weights file, checked),
:func:`load_embedded_model` (the shipped file, sidecar and sha256 required) and
:func:`save_weights`. The file format (safetensors + JSON sidecar, never pickle) is
:mod:`rpn_core.rpn.weights`'. Imports torch at module top.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rpn_core.rpn.config import RPNConfig
from rpn_core.rpn.model import RPNModel, default_device
from rpn_core.rpn.weights import WeightsError, read_weights, write_weights

__all__ = ["load_embedded_model", "load_model", "save_weights"]


def save_weights(model: RPNModel, path: str | Path, metadata: dict | None = None) -> str:
    """Write the model as safetensors + JSON sidecar (atomically); return the sha256."""
    return write_weights(path, model.state_dict(), model.config.to_dict(), metadata or {})


def load_model(
    weights_path: str | Path, device: torch.device | str | None = None, *, _require_sidecar=False
) -> RPNModel:
    """An :class:`RPNModel` from a weights file; :class:`WeightsError` names file and reason."""
    state, config_dict, metadata = read_weights(weights_path, require_sidecar=_require_sidecar)
    try:
        config = RPNConfig.from_dict(config_dict)
    except ValueError as exc:
        raise WeightsError(weights_path, f"bad configuration: {exc}") from exc
    model = RPNModel(config, device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = str(exc).replace("\n", " ").replace("\t", "")
        raise WeightsError(weights_path, f"weights do not fit the model: {reason}") from exc
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise WeightsError(weights_path, f"tensor {key!r} holds NaN or infinite values")
    model.metadata = metadata
    return model.to(device or default_device()).eval()


def load_embedded_model(
    weights_path: str | Path, device: torch.device | str | None = None
) -> RPNModel:
    """Shipped weights at ``weights_path`` (the app passes ``resources.embedded_weights()``):
    like :func:`load_model`, but the sidecar and its sha256 are required, not optional."""
    return load_model(weights_path, device, _require_sidecar=True)
