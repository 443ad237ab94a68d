"""``rpn-studio``: the desktop app, or a headless sub-command.

``rpn-studio [PATH ...]`` opens the GUI on images/folders (default: the embedded sample image);
``rpn-studio COMMAND ...`` (one of :data:`rpn_core.cli.main.COMMANDS`) runs headless and never imports
Qt. ``--help`` and ``--version`` need no display and import neither Qt nor torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from rpn_core import __version__
    from rpn_core.cli.main import COMMANDS

    commands = "\n".join(f"  {name:<10} {text}" for name, (_module, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="rpn-studio",
        description="RPN Studio: annotate boxes, inspect anchors and Region Proposal Network "
        "proposals. Without a COMMAND it opens the desktop app.",
        usage="rpn-studio [-h] [--version] [--recursive] [PATH ...]\n"
        "       rpn-studio COMMAND [options]   (see 'rpn-studio COMMAND --help')",
        epilog=f"headless commands (no display needed):\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rpn-studio {__version__}")
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="images and/or folders to open (default: the embedded sample image)",
    )
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="also list images in sub-folders"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from rpn_core.cli.main import COMMANDS

    if args and args[0] in COMMANDS:
        import resources
        from rpn_core.cli.main import main as cli_main

        return cli_main(args, embedded_weights=resources.embedded_weights())
    ns = build_parser().parse_args(args)
    from app.shell.launch import run_gui  # Qt is imported only from here on

    return run_gui(ns.paths, recursive=ns.recursive)


if __name__ == "__main__":
    sys.exit(main())
