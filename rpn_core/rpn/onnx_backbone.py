"""The frozen backbone on ONNX Runtime: the same float32 network, about twice as fast on a CPU.

Proposals spend ~70 % of their time in the backbone, and PyTorch's eager CPU kernels leave
speed on the table for MobileNetV2's depthwise convolutions. ONNX Runtime runs the *same*
batch-norm-folded float32 network (:func:`rpn_core.rpn.backbone.fold_frozen_bn`), exported
by ``torch.onnx`` with free height and width, so features equal PyTorch's up to float
rounding (a test pins ``max |diff| / max |f| < 1e-4`` on a real photo). The heads, anchors,
decoding and selection stay torchvision's, in PyTorch (the heads in the graph too were
measured: no faster here).

Only inference uses it (:meth:`rpn_core.rpn.model.RPNModel.compute_features`); training
backpropagates through PyTorch. The graph takes the prepared image in channels-last order
``(1, H, W, 3)`` -- the buffer :func:`~rpn_core.rpn.backbone.prepare_image` fills -- so no
copy is made on the way in, and returns the stride-16 map (and the stride-8 map of a model
with that level) as NCHW float32 -- or, for the SSD backbone on its fixed square input, its
six maps.

Exporting takes about a second, so the exported graph is kept on disk, named by a hash of
everything it depends on (:func:`graph_digest`: the weights, the versions of torch and
onnx, the source of the modules that define the graph): folder ``onnx/`` of
``$RPN_STUDIO_CACHE``, else of ``$XDG_CACHE_HOME/rpn-studio`` (``~/.cache/rpn-studio``).
A second process with the same weights opens the file in ~20 ms. Each graph has a
``.sha256`` beside it: a file that does not match it (damaged, truncated) or that ONNX
Runtime cannot open is exported again and replaced, and a cache folder that cannot be
written only costs the export each time.

If ``onnxruntime`` or ``onnx`` is missing, or the export or the session fails,
:func:`build_runner` returns None with the reason logged once, and the model runs in
PyTorch: proposals are the same, only slower.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["OnnxBackbone", "RunnerSlot", "available", "build_runner", "cache_dir", "graph_digest"]

log = logging.getLogger(__name__)
OPSET = 17
# The code that defines the exported graph: any edit to it gives new cache entries.
GRAPH_SOURCES = ("backbone.py", "onnx_backbone.py", "ssd_backbone.py")


def cache_dir() -> Path:
    """Where exported graphs are kept (module docstring)."""
    explicit = os.environ.get("RPN_STUDIO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rpn-studio"


def graph_digest(net: nn.Module) -> str:
    """sha256 over what the exported graph of ``net`` depends on: every tensor (name, dtype,
    shape, bytes), where the stride-8 map is read (``net.fine_split``), the torch and onnx
    versions, :data:`OPSET` and the source files :data:`GRAPH_SOURCES`."""
    from importlib.metadata import version  # importing onnx itself takes ~0.5 s

    # The outputs too: a one-level and a two-level model may share every backbone tensor.
    fine_split = getattr(net, "fine_split", None)
    square = getattr(net, "square", None)
    h = hashlib.sha256(
        f"{OPSET}|{torch.__version__}|{version('onnx')}|fine_split={fine_split}|"
        f"square={square}".encode()
    )
    here = Path(__file__).resolve().parent
    for name in GRAPH_SOURCES:
        h.update((here / name).read_bytes())
    for name, t in net.state_dict().items():
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def available() -> bool:
    """Whether both ``onnxruntime`` (the runtime) and ``onnx`` (the exporter's) import."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


class _ChannelsLastInput(nn.Module):
    """``(1, H, W, 3) -> (stride-16 map, [stride-8 map])``: the exported graph's signature."""

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


class _AllMaps(nn.Module):
    """``(1, N, N, 3) -> the SSD backbone's six maps``: a fixed square input (its TF-SAME
    padding depends on the size, so the graph is exported for that size)."""

    def __init__(self, backbone: nn.Module, square: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.square = square

    def forward(self, nhwc: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.backbone(nhwc.permute(0, 3, 1, 2)))


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
        outs = self.maps(x)
        return outs[0], (outs[1] if self.fine else None)

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output map, in the graph's order (the SSD backbone's six)."""
        nhwc = np.ascontiguousarray(x.detach().permute(0, 2, 3, 1).float().cpu().numpy())
        outs = self.session.run(None, {self._input: nhwc})  # type: ignore[attr-defined]
        return tuple(torch.from_numpy(o) for o in outs)


def build_runner(
    fused_backbone: nn.Module, fine_split: int | None, threads: int, square: int | None = None
) -> OnnxBackbone | None:
    """Export ``fused_backbone`` (float32, CPU; or open its cached export) and start an ONNX
    Runtime session with ``threads`` intra-op threads; None (reason logged) when that
    cannot be done. ``square``: the SSD backbone on its fixed ``square x square`` input
    (all six maps out; :meth:`OnnxBackbone.maps`)."""
    if not available():
        log.info("onnxruntime/onnx not installed: the backbone runs in PyTorch")
        return None
    try:
        import onnxruntime as ort

        fine = fine_split is not None
        if square:
            net: nn.Module = _AllMaps(fused_backbone, square).eval()
        else:
            net = _ChannelsLastInput(fused_backbone, fine_split).eval()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        path = cache_dir() / "onnx" / f"{graph_digest(net)}.onnx"
        session = _open_cached(ort, path, options)
        if session is None:
            if square:
                names = [f"map{i}" for i in range(6)]
            else:
                names = ["features"] + (["fine"] if fine else [])
            graph = _export(net, names, square)
            session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            _store(path, graph)
    except Exception as exc:  # noqa: BLE001 - any failure means: stay on PyTorch
        log.warning("ONNX Runtime backbone unavailable (%s): the backbone runs in PyTorch", exc)
        return None
    return OnnxBackbone(session, fine, threads)


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


def _export(net: nn.Module, names: list[str], square: int | None) -> bytes:
    """The graph of ``net`` with outputs ``names``: free height and width, or the fixed
    ``square x square`` input of the SSD backbone (its TF-SAME padding depends on the size,
    so the tracer fixes it)."""
    side = square or 64
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.zeros((1, side, side, 3)),),
            buf,
            input_names=["image"],
            output_names=names,
            dynamic_axes=None if square else {"image": {1: "height", 2: "width"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def _open_cached(ort: object, path: Path, options: object) -> object | None:
    """The session of a cached graph, or None (none there, or a damaged one -- not its
    recorded sha256, or refused by ONNX Runtime -- which is removed, to be written again)."""
    try:
        data = path.read_bytes()
        expected = path.with_suffix(".sha256").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError("its sha256 does not match")
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a damaged cache entry is only a cache miss
        log.info("cached graph %s cannot be opened (%s): exporting again", path, exc)
        path.unlink(missing_ok=True)
        return None


def _store(path: Path, graph: bytes) -> None:
    from rpn_core.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(path, graph)
        atomic_write_bytes(path.with_suffix(".sha256"), hashlib.sha256(graph).hexdigest().encode())
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
        log.info("cannot keep the exported graph in %s (%s)", path.parent, exc)
