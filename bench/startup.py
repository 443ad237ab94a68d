"""Time to first window: process start -> the main window's canvas first paints the sample.

Runs ``python -m app`` (no arguments: the embedded sample) several times with the start-up
probe of :mod:`app.shell.launch`, and reports the median. Also reports when torch finished importing
in the background (the anchor lab / proposals load it lazily), to show that the window comes
first. Offscreen by default; ``--xvfb`` runs under a real X server (``xvfb-run``).

Usage: ``.venv/bin/python bench/startup.py [--runs 5] [--xvfb]``; last line
``first_window_ms_median=<float>``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(xvfb: bool, wait_s: float) -> tuple[float, float]:
    env = dict(os.environ)
    env["RPN_STUDIO_PROBE_WAIT_S"] = str(wait_s)
    cmd = [sys.executable, "-m", "app"]
    if xvfb:
        env.pop("QT_QPA_PLATFORM", None)
        cmd = [shutil.which("xvfb-run") or "xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    env["RPN_STUDIO_STARTUP_PROBE"] = repr(time.time())
    out = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=wait_s + 60
    )
    first = re.search(r"first_window_ms=([\d.]+)", out.stdout)
    torch = re.search(r"torch_imported_ms=([\d.]+|nan)", out.stdout)
    if first is None:
        raise RuntimeError(f"no first_window_ms in output:\n{out.stdout}\n{out.stderr[-2000:]}")
    return float(first.group(1)), float(torch.group(1)) if torch else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--xvfb", action="store_true", help="real X server via xvfb-run")
    parser.add_argument(
        "--torch-wait",
        type=float,
        default=15.0,
        help="seconds to wait for the background torch import per run",
    )
    args = parser.parse_args()
    firsts, torches = [], []
    for i in range(args.runs):
        first, torch = one_run(args.xvfb, args.torch_wait)
        firsts.append(first)
        torches.append(torch)
        print(f"run {i + 1}: first_window_ms={first:.0f} torch_imported_ms={torch:.0f}", flush=True)
    done = [t for t in torches if not math.isnan(t)]
    if done:
        print(
            f"torch_imported_ms_median={statistics.median(done):.1f} "
            f"(window first in {sum(f < t for f, t in zip(firsts, torches, strict=True))}"
            f"/{len(firsts)} runs)"
        )
    else:
        print("torch was not imported within the wait (nothing loads it at start-up)")
    print(f"first_window_ms_median={statistics.median(firsts):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
