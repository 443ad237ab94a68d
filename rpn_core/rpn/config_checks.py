"""Reading an :class:`~rpn_core.rpn.config.RPNConfig` from untrusted data (a weights file's
header or sidecar): every field's type and range is checked (:data:`CONFIG_RANGES`, one place)
before anything is built; :class:`ConfigError` names the bad setting. Importable without torch.
"""

from __future__ import annotations

import math

from rpn_core.anchors.grid import AnchorConfig
from rpn_core.anchors.labelling import LabelConfig
from rpn_core.errors import RPNStudioError
from rpn_core.rpn.config import BACKBONES, MODEL_STRIDES, SSD_STRIDES, RPNConfig

__all__ = ["CONFIG_RANGES", "ConfigError", "checked_fields"]


class ConfigError(RPNStudioError, ValueError):
    """A configuration value is missing, of the wrong type or out of range; ``field`` is its
    dotted name (``"anchors.sizes"``). No file (``path`` is ``None``): the reader that found
    the configuration re-raises it as its own error naming the file (``WeightsError``)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(None, f"{field}: {reason}" if field else reason)


# The sane range of each numeric setting, checked by RPNConfig.from_dict (one place). The
# input sides bound the resized image the network sees (4096 px: 16.8 MP, about 1 GB of
# backbone activations); the rest are well beyond any published RPN setting.
CONFIG_RANGES: dict[str, tuple[float, float]] = {
    "pre_nms_top_n": (1, 100_000),
    "post_nms_top_n": (1, 100_000),
    "nms_iou": (1e-6, 1.0),
    "min_size": (0.0, 10_000.0),
    "score_threshold": (-1e6, 1e6),
    "min_side": (1, 4096),
    "max_side": (1, 4096),
    "head_conv_depth": (0, 8),
    "input_square": (0, 4096),
    "anchors.sizes": (1e-3, 16_384.0),
    "anchors.aspect_ratios": (1e-3, 1e3),
    "anchors.stride": (16, 512),
    "anchors.size_strides": (8, 512),
    "labels.fg_iou": (0.0, 1.0),
    "labels.bg_iou": (0.0, 1.0),
    "labels.batch_size_per_image": (1, 100_000),
    "labels.positive_fraction": (0.0, 1.0),
}
_MAX_ANCHOR_LIST = 16  # sizes or ratios per location
_INTS = {
    "pre_nms_top_n",
    "post_nms_top_n",
    "min_side",
    "max_side",
    "head_conv_depth",
    "input_square",
    "anchors.stride",
    "anchors.size_strides",
    "labels.batch_size_per_image",
}


def _number(name: str, value: object) -> float | int:
    lo, hi = CONFIG_RANGES[name]
    want_int = name in _INTS
    if isinstance(value, bool) or not isinstance(value, int if want_int else (int, float)):
        kind = "an integer" if want_int else "a number"
        raise ConfigError(name, f"must be {kind}, got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(name, f"must be in [{lo:g}, {hi:g}], got {value!r}")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"must be true or false, got {value!r}")
    return value


def _object(name: str, value: object, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a JSON object, got {value!r}")
    unknown = sorted(str(k) for k in set(value) - allowed)
    if unknown:
        raise ConfigError(name, f"unknown settings {unknown}")
    return value


def checked_fields(data: object) -> dict:
    """Keyword arguments of :class:`RPNConfig` from untrusted ``data`` (see ``from_dict``)."""
    top = _object("", data, set(RPNConfig.__dataclass_fields__))
    fields: dict = {}
    for key, value in top.items():
        if key == "anchors":
            fields[key] = _anchors(value)
        elif key == "labels":
            fields[key] = _labels(value)
        elif key == "context":
            fields[key] = _bool(key, value)
        elif key == "backbone":
            if value not in BACKBONES:
                raise ConfigError(key, f"must be one of {list(BACKBONES)}, got {value!r}")
            fields[key] = value
        else:
            fields[key] = _number(key, value)
    fields.setdefault("context", False)  # files from before the context setting
    lo, hi = fields.get("min_side", 600), fields.get("max_side", 1000)
    if lo > hi:
        raise ConfigError("min_side", f"must be <= max_side ({hi}), got {lo}")
    return fields


def _anchors(value: object) -> AnchorConfig:
    raw = _object(
        "anchors", value, {"sizes", "aspect_ratios", "stride", "size_strides", "centring"}
    )
    out: dict = {}
    for key in ("sizes", "aspect_ratios"):
        name = f"anchors.{key}"
        items = raw.get(key)
        if not isinstance(items, list) or not 1 <= len(items) <= _MAX_ANCHOR_LIST:
            raise ConfigError(name, f"must be a list of 1 to {_MAX_ANCHOR_LIST} numbers")
        out[key] = tuple(float(_number(name, v)) for v in items)
        if len(set(out[key])) != len(out[key]):
            raise ConfigError(name, "values must not repeat")
    if "stride" not in raw:
        raise ConfigError("anchors.stride", "missing")
    out["stride"] = _number("anchors.stride", raw["stride"])
    if "size_strides" in raw:
        name = "anchors.size_strides"
        items = raw["size_strides"]
        if not isinstance(items, list) or len(items) != len(out["sizes"]):
            raise ConfigError(name, f"must be a list of {len(out['sizes'])} strides, one per size")
        out["size_strides"] = tuple(_number(name, v) for v in items)
        allowed = set(MODEL_STRIDES) | set(SSD_STRIDES)
        if not set(out["size_strides"]) <= allowed:
            raise ConfigError(name, f"each must be one of {sorted(allowed)}, got {items!r}")
    if "centring" in raw:
        from rpn_core.anchors.grid import CENTRINGS

        if raw["centring"] not in CENTRINGS:
            raise ConfigError("anchors.centring", f"must be one of {list(CENTRINGS)}")
        out["centring"] = raw["centring"]
    try:
        return AnchorConfig(**out)
    except ValueError as exc:
        raise ConfigError("anchors", str(exc)) from exc


def _labels(value: object) -> LabelConfig:
    allowed = set(LabelConfig.__dataclass_fields__)
    raw = _object("labels", value, allowed)
    out: dict = {}
    for key, item in raw.items():
        name = f"labels.{key}"
        out[key] = _number(name, item) if name in CONFIG_RANGES else _bool(name, item)
    fg, bg = out.get("fg_iou", LabelConfig.fg_iou), out.get("bg_iou", LabelConfig.bg_iou)
    if bg > fg:
        raise ConfigError("labels.bg_iou", f"must be <= labels.fg_iou ({fg}), got {bg}")
    return LabelConfig(**out)
