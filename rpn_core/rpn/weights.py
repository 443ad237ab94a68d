"""Reading and writing RPN weights: safetensors only, with a sha256-checked JSON sidecar.

A weights file ``NAME.safetensors`` holds the tensors (the truncated backbone and the RPN
head) and, in its header metadata, the ``RPNConfig`` as JSON. Beside it ``NAME.json`` holds
``{"format", "format_version", "sha256", "config", "metadata"}``; when the sidecar exists,
the file's sha256 must match it. A save writes the sidecar first, keeping the replaced
version's ``{"sha256", "config", "metadata"}`` under ``"previous"``, then the tensors: a
crash between the two leaves the old tensors, which still load. Pickle files
(``torch.save`` checkpoints) are recognised by their first bytes and refused before anything
parses them: unpickling can run code.

Every failure is a :class:`WeightsError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from rpn_core.annotation.data import AnnotationWriteError
from rpn_core.errors import RPNStudioError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["FORMAT", "WeightsError", "read_weights", "sidecar_path", "write_weights"]

FORMAT = "rpn-studio-rpn-weights"
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024


class WeightsError(RPNStudioError):
    """A weights file cannot be used; ``path`` names it, ``reason`` says why."""

    path: Path


def sidecar_path(path: str | Path) -> Path:
    """``NAME.json`` beside ``NAME.safetensors``."""
    return Path(path).with_suffix(".json")


def _atomic_write(path: Path, data: bytes) -> None:
    from rpn_core.atomic import atomic_write_bytes

    atomic_write_bytes(path, data)


def write_weights(
    path: str | Path, state: dict[str, torch.Tensor], config: dict, metadata: dict
) -> str:
    """Write ``state`` as safetensors plus the JSON sidecar, each atomically; return sha256.

    Raises :class:`WeightsError` when the file cannot be written.
    """
    from safetensors.torch import save

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    header = {"format": FORMAT, "config": json.dumps(config, sort_keys=True)}
    try:
        data = save(tensors, metadata=header)
        digest = hashlib.sha256(data).hexdigest()
        side = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sha256": digest,
            "config": config,
            "metadata": metadata,
        }
        previous = _entry_on_disk(path)
        if previous is not None:
            side["previous"] = previous
        # Sidecar first, naming both versions: a crash between the two replaces leaves the
        # old tensors beside a sidecar that still describes them (read_weights uses it).
        _atomic_write(sidecar_path(path), (json.dumps(side, indent=2) + "\n").encode())
        _atomic_write(path, data)
    except (AnnotationWriteError, OSError, TypeError, ValueError) as exc:
        raise WeightsError(path, f"cannot write weights: {exc}") from exc
    return digest


def _entry_on_disk(path: Path) -> dict | None:
    """``{"sha256", "config", "metadata"}`` of the weights file now at ``path``, when its
    sidecar describes it (as the current or the previous version); else None."""
    try:
        side = _read_sidecar(path)
        data = path.read_bytes() if side is not None else None
    except (WeightsError, OSError):
        return None
    if side is None or data is None:
        return None
    digest = hashlib.sha256(data).hexdigest()
    for entry in (side, side.get("previous")):
        if isinstance(entry, dict) and entry.get("sha256") == digest:
            return {k: entry.get(k) for k in ("sha256", "config", "metadata")}
    return None


def _looks_like_pickle(data: bytes) -> str | None:
    if data[:4] == b"PK\x03\x04":
        return "a zip archive (a torch.save checkpoint, which holds pickle)"
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "a pickle file"
    return None


def _header_metadata(path: Path, data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors header (checked for size and JSON first)."""
    if len(data) < 8:
        raise WeightsError(path, f"truncated: only {len(data)} bytes, not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise WeightsError(path, "not a safetensors file, or truncated (bad header length)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(path, f"not a safetensors file (header is not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise WeightsError(path, "not a safetensors file (header is not an object)")
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def _read_sidecar(path: Path) -> dict | None:
    side = sidecar_path(path)
    if not side.exists():
        return None
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(side, f"unreadable weights metadata: {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise WeightsError(side, f"not an RPN Studio weights metadata file (format != {FORMAT})")
    return info


def read_weights(
    path: str | Path, *, require_sidecar: bool = False
) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """``(state, config_dict, metadata)`` from a weights file; :class:`WeightsError` if bad.

    Order of checks: the file exists and is readable; it is not pickle; its sha256 matches
    the sidecar (when there is one, or it is required); it parses as safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(path, f"cannot read: {exc.strerror or exc}") from exc
    kind = _looks_like_pickle(data)
    if kind:
        raise WeightsError(
            path, f"{kind}, not safetensors: pickle can run code, so it is never loaded"
        )
    side = _read_sidecar(path)
    if side is None and require_sidecar:
        raise WeightsError(sidecar_path(path), "missing weights metadata file")
    if side is not None:
        digest = hashlib.sha256(data).hexdigest()
        previous = side.get("previous")
        if side.get("sha256") != digest and isinstance(previous, dict):
            if previous.get("sha256") == digest:  # a save was interrupted: the old version
                side = {**side, **previous}
        if side.get("sha256") != digest:
            raise WeightsError(
                path,
                f"sha256 mismatch (expected {side.get('sha256')}, got {digest}): "
                "the file is corrupted or was replaced",
            )
    meta = _header_metadata(path, data)
    try:
        state = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise WeightsError(path, f"not a valid safetensors file (truncated?): {exc}") from exc
    if side is not None:
        config, metadata = side.get("config"), side.get("metadata") or {}
    else:
        try:
            config, metadata = json.loads(meta.get("config", "null")), {}
        except json.JSONDecodeError as exc:
            raise WeightsError(path, f"bad configuration in the header: {exc}") from exc
    if not isinstance(config, dict):
        raise WeightsError(path, "no RPN configuration in the file or beside it")
    return state, config, metadata
