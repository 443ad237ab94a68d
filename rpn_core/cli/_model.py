"""Loading the RPN a sub-command runs: ``--weights`` or the embedded weights it was given."""

from __future__ import annotations

import argparse
from typing import Any


def load_cli_model(args: argparse.Namespace, device: Any = None) -> Any:
    """``--weights FILE`` if given, else the embedded weights the entry point passed in
    (sidecar and sha256 required); a clear error when neither exists."""
    from rpn_core.rpn.loading import load_embedded_model, load_model

    if args.weights:
        return load_model(args.weights, device)
    embedded = getattr(args, "embedded_weights", None)
    if embedded is None:
        raise SystemExit("no RPN weights: pass --weights FILE")
    return load_embedded_model(embedded, device)
