"""Copies of a model for another anchor set or label rule (what the anchor lab designs and the
Train dock and ``rpn-studio train`` fine-tune with). Imports torch at module top."""

from __future__ import annotations

from dataclasses import replace

from rpn_core.anchors.grid import AnchorConfig, base_anchors
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.rpn.model import RPNModel

__all__ = ["with_anchors", "with_input_size", "with_labels"]


def with_anchors(model: RPNModel, anchors: AnchorConfig) -> RPNModel:
    """A copy of ``model`` that uses ``anchors`` (e.g. designed in the anchor lab), ready to
    fine-tune; ``model`` itself is unchanged (returned as is when the anchors are equal).

    The backbone and the heads' shared layers are copied. Each new anchor shape takes the
    objectness and box-delta weights of the old anchor shape *of the same level* it overlaps
    most (IoU of the two boxes centred on one point): deltas are relative to the anchor, so
    a similar shape is a close first guess, and fine-tuning starts from a working model
    rather than from noise. A level the old model lacks (a stride-8 level added in the lab)
    starts from a fresh head. ``ValueError`` when the anchors need a stride the backbone
    has no map for (:data:`rpn_core.rpn.config.MODEL_STRIDES`; the SSD backbone's six
    levels: :data:`~rpn_core.rpn.config.SSD_STRIDES`).
    """
    old = model.config.anchors
    if anchors == old:
        return model
    try:
        new = RPNModel(replace(model.config, anchors=anchors), device="cpu")
    except ValueError as exc:
        raise ValueError(f"these anchors cannot be used by this model: {exc}") from exc
    from torchvision.ops import box_iou

    src = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    old_levels = {lv.stride: lv for lv in old.levels}
    state = new.state_dict()
    for level in anchors.levels:
        prefix = new.level_head_prefix(level.stride)
        donor_level = old_levels.get(level.stride)
        if donor_level is None:
            continue  # the new level keeps its fresh initialisation
        donor = box_iou(base_anchors(level), base_anchors(donor_level)).argmax(dim=1)
        for key, value in src.items():
            if not key.startswith(prefix):
                continue
            if key.startswith(prefix + "cls_logits."):
                state[key] = value[donor]
            elif key.startswith(prefix + "bbox_pred."):
                state[key] = value.unflatten(0, (-1, 4))[donor].flatten(0, 1)  # 4 rows each
            elif key in state:
                state[key] = value
    for key, value in src.items():
        if key.startswith("backbone."):
            state[key] = value
    new.load_state_dict(state)
    new.metadata = dict(getattr(model, "metadata", {}) or {})
    new.bf16_inference = model.bf16_inference
    new.onnx_inference = model.onnx_inference
    return new.to(model.device).eval()


def with_labels(model: RPNModel, labels: LabelConfig) -> RPNModel:
    """A copy of ``model`` that labels anchors by ``labels`` when it trains (thresholds and
    minibatch sampling; e.g. the anchor lab's rule), with the same weights: the rule shapes
    only the loss. Returned as is when the rule is already the model's."""
    if labels == model.config.labels:
        return model
    new = RPNModel(replace(model.config, labels=labels), device="cpu")
    new.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    new.metadata = dict(getattr(model, "metadata", {}) or {})
    new.bf16_inference = model.bf16_inference
    new.onnx_inference = model.onnx_inference
    return new.to(model.device).eval()


def with_input_size(model: RPNModel, side: int) -> RPNModel:
    """A copy of ``model`` that sees its images at another size, with the same weights: the
    SSD's square input (``input_square = side``), or a MobileNetV2 model's shorter side
    (``min_side = side``, ``max_side`` scaled alike). Anchors keep their pixel sizes, so a
    larger input reaches smaller objects (and fewer of the largest). Returned as is when the
    size is already the model's; ``ValueError`` names a size out of range."""
    config = model.config
    current = config.input_square if config.is_ssd else config.min_side
    if side == current:
        return model
    if not 16 <= side <= 2048:
        raise ValueError(f"input size must be 16 to 2048 px, got {side}")
    if config.is_ssd:
        new_config = replace(config, input_square=side)
    else:
        longer = max(side, round(side * config.max_side / config.min_side))
        new_config = replace(config, min_side=side, max_side=longer)
    new = RPNModel(new_config, device="cpu")
    new.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    new.metadata = dict(getattr(model, "metadata", {}) or {})
    new.bf16_inference = model.bf16_inference
    new.onnx_inference = model.onnx_inference
    return new.to(model.device).eval()
