"""The headless command line: ``rpn-studio convert | propose | eval | train | anchors``.

Each sub-command lives in ``rpn_core.cli.<name>`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``; modules must not import torch or Qt at
import time, so ``--help`` stays instant. Progress goes to stderr, results to stdout/files.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from rpn_core import __version__

# name -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "propose": ("rpn_core.cli.propose", "run the RPN (or Selective Search) on images"),
    "eval": ("rpn_core.cli.evaluate", "proposal recall and AR against annotations"),
    "train": ("rpn_core.cli.train", "fine-tune the RPN on an annotated folder"),
    "anchors": ("rpn_core.cli.anchors", "design anchors by IoU k-means on GT boxes"),
    "convert": ("rpn_core.cli.convert", "convert annotations between formats"),
}


def _available() -> dict[str, object]:
    modules = {}
    for name, (module_name, _help) in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a real missing dependency, not a missing command
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpn-studio", description="RPN Studio command line (no display needed)."
    )
    parser.add_argument("--version", action="version", version=f"rpn-studio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _available().items():
        p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None, *, embedded_weights: Path | None = None) -> int:
    """Run one sub-command. ``embedded_weights`` is the shipped RPN, used where ``--weights``
    is not given (the ``rpn-studio`` entry point passes it; the core never looks it up)."""
    args = build_parser().parse_args(argv)
    args.embedded_weights = embedded_weights
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
