"""The frozen backbone on ONNX Runtime: the same float32 network, about twice as fast on a CPU.

Proposals spend ~70 % of their time in the backbone, and PyTorch's eager CPU kernels leave
speed on the table for MobileNetV2's depthwise convolutions. ONNX Runtime runs the *same*
batch-norm-folded float32 network (:func:`rpn_core.rpn.backbone.fold_frozen_bn`), exported
in memory by ``torch.onnx`` with free height and width, so features equal PyTorch's up to
float rounding (a test pins ``max |diff| / max |f| < 1e-4`` on a real photo). The heads,
anchors, decoding and selection stay torchvision's, in PyTorch.

Only inference uses it (:meth:`rpn_core.rpn.model.RPNModel.compute_features`); training
backpropagates through PyTorch. The graph takes the prepared image in channels-last order
``(1, H, W, 3)`` -- the buffer :func:`~rpn_core.rpn.backbone.prepare_image` fills -- so no
copy is made on the way in, and returns the stride-16 map (and the stride-8 map of a model
with that level) as NCHW float32.

If ``onnxruntime`` or ``onnx`` is missing, or the export or the session fails,
:func:`build_runner` returns None with the reason logged once, and the model runs the
backbone in PyTorch: proposals are the same, only slower.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

__all__ = ["OnnxBackbone", "RunnerSlot", "available", "build_runner"]

log = logging.getLogger(__name__)
OPSET = 17


def available() -> bool:
    """Whether both ``onnxruntime`` (the runtime) and ``onnx`` (the exporter's) import."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


class _ChannelsLastInput(nn.Module):
    """``(1, H, W, 3) -> (stride-16 map, stride-8 map)``: the exported graph's signature."""

    def __init__(self, backbone: nn.Module, fine_split: int | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.fine_split = fine_split

    def forward(self, nhwc: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = nhwc.permute(0, 3, 1, 2)
        if self.fine_split is None:
            return (self.backbone(x),)
        fine = self.backbone[: self.fine_split](x)
        return self.backbone[self.fine_split :](fine), fine


class OnnxBackbone:
    """An ONNX Runtime session over one exported backbone; call it like the backbone.

    ``runner(nchw_view)`` takes the ``(1, 3, Hp, Wp)`` tensor of
    :func:`~rpn_core.rpn.backbone.prepare_image` (a permuted view of an NHWC buffer, or any
    NCHW tensor) and returns ``(stride-16 map, stride-8 map or None)``.
    """

    def __init__(self, session: object, fine: bool, threads: int) -> None:
        self.session = session
        self.fine = fine
        self.threads = threads
        self._input = session.get_inputs()[0].name  # type: ignore[attr-defined]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        nhwc = np.ascontiguousarray(x.detach().permute(0, 2, 3, 1).float().cpu().numpy())
        outs = self.session.run(None, {self._input: nhwc})  # type: ignore[attr-defined]
        coarse = torch.from_numpy(outs[0])
        return coarse, (torch.from_numpy(outs[1]) if self.fine else None)


def build_runner(
    fused_backbone: nn.Module, fine_split: int | None, threads: int
) -> OnnxBackbone | None:
    """Export ``fused_backbone`` (float32, CPU) and open an ONNX Runtime session with
    ``threads`` intra-op threads; None (reason logged) when that cannot be done."""
    if not available():
        log.info("onnxruntime/onnx not installed: the backbone runs in PyTorch")
        return None
    try:
        import onnxruntime as ort

        net = _ChannelsLastInput(fused_backbone, fine_split).eval()
        names = ["features"] + (["fine"] if fine_split is not None else [])
        example = torch.zeros((1, 64, 64, 3))
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                net,
                (example,),
                buf,
                input_names=["image"],
                output_names=names,
                dynamic_axes={"image": {1: "height", 2: "width"}},
                opset_version=OPSET,
                dynamo=False,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure means: stay on PyTorch
        log.warning("ONNX Runtime backbone unavailable (%s): the backbone runs in PyTorch", exc)
        return None
    return OnnxBackbone(session, fine_split is not None, threads)


class RunnerSlot:
    """The model's cached runner, keyed by the backbone's weights and the thread count.

    Deep copies and pickles start empty (a session cannot be copied; the copy builds its
    own on first use), so ``copy.deepcopy(model)`` keeps working.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.runner: OnnxBackbone | None = None

    def __deepcopy__(self, memo: dict) -> RunnerSlot:
        return RunnerSlot()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
