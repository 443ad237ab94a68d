"""What the Train dock's Start will train with, in words, before it starts (Qt-free).

The anchor lab's anchor set and label rule are used when their boxes are ticked and they
differ from the active model's; a set the model's backbone cannot use is refused with the
reason (:func:`rpn_core.rpn.config.anchors_misfit`). ``state`` is an
:class:`rpn_core.app_state.AppState`.
"""

from __future__ import annotations

from typing import Any

from rpn_core.anchors.grid import format_sizes
from rpn_core.rpn.config import anchors_misfit

__all__ = ["anchor_text", "lab_anchors", "lab_rule", "plan_html", "rule_text"]


def anchor_text(anchors: Any) -> str:
    """``"sizes 20, 40; ratios 0.5, 1; 4 per cell"`` (a range over the levels for the SSD's
    twelve sizes)."""
    levels = anchors.levels
    if len(anchors.sizes) > 6:
        sizes = f"{min(anchors.sizes):g}-{max(anchors.sizes):g} px on {len(levels)} levels"
    else:
        sizes = format_sizes(anchors)
    ratios = ", ".join(f"{r:.3g}" for r in anchors.aspect_ratios)
    per = "/".join(dict.fromkeys(str(lv.num_anchors_per_location) for lv in levels))
    return f"sizes {sizes}; ratios {ratios}; {per} per cell"


def rule_text(rule: Any) -> str:
    """``"guide (foreground IoU > 0.5, background < 0.1)"``."""
    op = ">=" if rule.fg_inclusive else ">"
    best = ", or a GT box's best anchor" if rule.allow_low_quality else ""
    return (
        f"{rule.preset_name} (foreground IoU {op} {rule.fg_iou:g}{best}, "
        f"background < {rule.bg_iou:g})"
    )


def lab_anchors(state: Any, ticked: bool) -> tuple[Any, str]:
    """``(AnchorConfig or None, note)``: the anchor lab's set when ``ticked`` and it differs
    from the model's; the note says so (or why it cannot be used: starts with "Cannot")."""
    anchors = state.anchor_config
    if not ticked or anchors == state.model_config.anchors:
        return None, ""
    reason = anchors_misfit(anchors, state.model_config)
    if reason:
        return None, (
            f"Cannot train with the anchor lab's anchors: {reason}. "
            "Change them in the anchor lab or untick Anchors."
        )
    return anchors, (
        f"With the anchor lab's anchors ({anchor_text(anchors)}), each started from the "
        "model's closest anchor shape."
    )


def lab_rule(state: Any, ticked: bool) -> Any:
    """The anchor lab's label rule when ``ticked`` and it differs from the model's (the rule
    training then labels anchors by), else None."""
    if not ticked or state.label_config == state.model_config.labels:
        return None
    return state.label_config


def plan_html(state: Any, lab_anchors_ticked: bool, lab_rule_ticked: bool, size: int) -> str:
    """The line under the settings: input size (0: the model's), anchors and rule."""
    model = state.model_config
    anchors, note = lab_anchors(state, lab_anchors_ticked)
    anchors = anchors or model.anchors
    rule = lab_rule(state, lab_rule_ticked) or model.labels
    whose_a = "the anchor lab's" if anchors != model.anchors else "the model's"
    whose_r = "the anchor lab's" if rule != model.labels else "the model's"
    warn = f"<br><font color='#D55E00'>{note}</font>" if note.startswith("Cannot") else ""
    where = f" at input size {size} px" if size else ""
    return (
        f"Start trains{where} with {whose_a} anchors ({anchor_text(anchors)}) and "
        f"{whose_r} label rule {rule_text(rule)}.{warn}"
    )
